#!/usr/bin/env node
// Writes policies/capabilities.json: `opa capabilities --current` restricted to the builtins that
// OPA's wasm compiler implements natively, so `opa check/build --capabilities` rejects any other
// builtin ("undefined function") instead of it failing at evaluation time in Node.
// Usage: node scripts/gen-capabilities.mjs   (opa: $MTA_POLICY_OPA, .tools/opa-<pin>/opa, or PATH)
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const pin = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).mtaPolicy.opaVersion;

// Keys of `builtinsFunctions` in OPA's internal/compiler/wasm/wasm.go at the pinned version
// (see shared/reference/opa-wasm.md §2.1; this pin adds array.flatten and internal.template_string).
// The npm SDK's JS builtins (sprintf, regex.split, yaml.*) are deliberately left out.
const NATIVE = `
  plus minus mul div abs round ceil floor rem
  array.concat array.flatten array.reverse array.slice
  set_diff and or intersection union
  is_number is_string is_boolean is_array is_set is_object is_null type_name
  bits.or bits.and bits.negate bits.xor bits.lsh bits.rsh
  count sum product max min sort all any
  base64.is_valid base64.decode base64.encode base64url.encode base64url.decode
  net.cidr_contains net.cidr_overlap net.cidr_intersects
  equal gt gte lt lte neq
  glob.match json.marshal json.unmarshal json.is_valid
  object.filter object.get object.keys object.remove object.union object.union_n
  concat format_int indexof substring lower upper contains startswith endswith strings.reverse
  split replace strings.replace_n trim trim_left trim_prefix trim_right trim_suffix trim_space
  internal.template_string numbers.range to_number walk graph.reachable
  regex.is_valid regex.match re_match regex.find_all_string_submatch_n
  json.remove json.filter internal.member_2 internal.member_3`;
// Not calls in the compiled plan: `=`/`:=` become unification, print() is compiled out of wasm,
// and internal.test_case is only injected by `opa test`.
const COMPILER = "eq assign print internal.print internal.test_case";
const allowed = new Set(`${NATIVE} ${COMPILER}`.split(/\s+/).filter(Boolean));

const pinned = join(root, ".tools", `opa-${pin}`, "opa");
const opa = process.env.MTA_POLICY_OPA || (existsSync(pinned) ? pinned : "opa");
const version = execFileSync(opa, ["version"], { encoding: "utf8" }).match(/^Version: (\S+)/m)?.[1];
if (`v${version}` !== pin) {
  console.error(`${opa} is version ${version}, the project pins ${pin}; run scripts/test.sh to install it`);
  process.exit(1);
}

const caps = JSON.parse(execFileSync(opa, ["capabilities", "--current"], { encoding: "utf8", maxBuffer: 64 << 20 }));
const known = new Set(caps.builtins.map((b) => b.name));
const missing = [...allowed].filter((n) => !known.has(n));
if (missing.length) {
  console.error(`opa ${version} lacks builtins listed as wasm-native here: ${missing.join(", ")}`);
  process.exit(1);
}
const total = caps.builtins.length;
caps.builtins = caps.builtins.filter((b) => allowed.has(b.name));

const out = join(root, "policies", "capabilities.json");
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify(caps, null, 2) + "\n");
console.log(`wrote ${out}: ${caps.builtins.length} of ${total} builtins (wasm-native, opa ${version})`);
