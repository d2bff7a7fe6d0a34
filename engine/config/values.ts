/** Decoders for the configuration's value types: names, addresses, ranges, sizes, rights, replies. */
import { REPLY_CATALOGUE, REASONS, type Reason } from '../replies.js';
import type { Reply } from '../reply.js';
import { isParseFailure, parseBinding, parseIp, parseIpRange, type ParsedIp, type ParseFailure } from '../ip.js';
import { code, didYouMean } from './issues.js';
import { BAD, named, obj, optional, refine, required, withDefault, type Decoder } from './decode.js';
import { caseless, integer, parsed, scalar, string } from './scalars.js';
import { normaliseAddress, normaliseDomain, normaliseHost } from './names.js';
import { parseListen, parseNextHop, type NextHop } from './endpoints.js';
import { RIGHTS, type AdapterListener, type Binding, type IpRange, type Right } from './types.js';
import { BYTE_SIZE_PATTERN, formatByteSize, parseByteSize } from './units.js';

export const host = (): Decoder<string> =>
  named('host', parsed(normaliseHost, { description: 'A fully qualified host name.', examples: ['smtp.northwind.test'] }));

/** A domain name, as a lower-case A-label (and as written); `*.` in front only when `wildcard` is allowed. */
export const domain = (wildcard: boolean): Decoder<{ domain: string; wildcard: boolean; text: string }> =>
  named(
    wildcard ? 'domainPattern' : 'domain',
    refine(
      parsed((t) => normaliseDomain(t, wildcard), {
        maxLength: 256,
        description: wildcard ? 'A domain name, or `*.domain` for all its subdomains.' : 'A domain name (Unicode or A-labels).',
        examples: wildcard ? ['northwind.test', '*.northwind.test'] : ['fabrikam.test'],
      }),
      (d, _at, node) => ({ ...d, text: node.kind === 'scalar' ? node.source.trim() : '' }),
    ),
  );

export const address = (): Decoder<string> =>
  named('address', parsed(normaliseAddress, { description: 'An email address local@domain.', examples: ['nancy@northwind.test'] }));

export const ipAddress = (): Decoder<ParsedIp> =>
  named(
    'ipAddress',
    parsed(
      (t): ParsedIp | ParseFailure => {
        const ip = parseIp(t);
        if (ip === null) return { error: `${code(t)} is not an IP address`, fix: 'write an IPv4 or IPv6 address, e.g. 192.0.2.10' };
        if (ip.value === 0n) return { error: `${code(t)} is the unspecified address, not one of this server's addresses`, fix: 'list the actual addresses' };
        return ip;
      },
      { description: 'An IPv4 or IPv6 address.', examples: ['192.0.2.10', '2001:db8::10'] },
    ),
  );

export const ipRange = (): Decoder<IpRange> =>
  named(
    'ipRange',
    refine(
      parsed(parseIpRange, {
        description: 'A single IP (192.0.2.1), a CIDR block (192.0.2.0/24, 2001:db8::/32) or a range (192.0.2.1-192.0.2.30).',
        examples: ['192.0.2.1', '192.0.2.0/24', '192.0.2.1-192.0.2.30', '2001:db8::/32'],
      }),
      (r, at, node) => ({ text: node.kind === 'scalar' ? node.source.trim() : '', family: r.family, first: r.first, last: r.last, source: at.issues.ref(at) }),
    ),
  );

export const binding = (): Decoder<Binding> =>
  named(
    'binding',
    refine(
      parsed(parseBinding, {
        description: 'A local ip:port: 0.0.0.0:25 (all IPv4), [::]:25 (all IPv6), 192.0.2.10:25, [2001:db8::1]:25.',
        examples: ['0.0.0.0:25', '[::]:25', '0.0.0.0:587', '192.0.2.10:25'],
      }),
      (b, at) => ({ text: b.text, ip: b.ip, family: b.family, port: b.port, source: at.issues.ref(at) }),
    ),
  );

/** A byte size from `min` to `max` bytes, or unlimited (null). */
export function byteSize(min: number, max: number): Decoder<number | null> {
  const range = `from ${formatByteSize(min)} to ${formatByteSize(max)}`;
  return refine(
    named(
      'byteSize',
      scalar(['integer', 'string'], (v, at) => {
        const s = parseByteSize(v);
        return isParseFailure(s) ? at.fail(s.error, s.fix) : s.bytes;
      }, {
        minimum: 0,
        pattern: BYTE_SIZE_PATTERN,
        description: 'A size: bytes (integer), a number with B/KB/MB/GB/TB (binary multiples), or unlimited.',
        examples: ['36MB', '256KB', '2GB', 'unlimited', 37748736],
      }),
    ),
    (bytes, at, node) =>
      bytes !== null && (bytes < min || bytes > max)
        ? at.fail(
            `${String(at.path[at.path.length - 1])} must be ${range}, or unlimited; ${code(node.kind === 'scalar' ? node.source : '')} is ${formatByteSize(bytes)}`,
            `use a size ${range}`,
          )
        : bytes,
  );
}

export const right = (): Decoder<Right> =>
  named(
    'right',
    caseless(RIGHTS, (v) => [`unknown extended right ${code(v)}`, didYouMean(v, RIGHTS, `use one of ${RIGHTS.join(', ')}`)], 'An extended right, spelled as in Exchange (any letter case).'),
  );

export const SASL_MECHANISMS = ['PLAIN', 'LOGIN'] as const;
export const sasl = (): Decoder<(typeof SASL_MECHANISMS)[number]> =>
  caseless(SASL_MECHANISMS, (v) => [`${code(v)} is not a SASL mechanism mta-policy offers for BasicAuth`, 'use PLAIN or LOGIN']);

/** RFC 5322 field-name characters (printable ASCII except colon). */
const HEADER_PREFIX = /^[!-9;-~]+$/;
export const headerPrefix = (): Decoder<string> =>
  named(
    'headerPrefix',
    parsed((t): string | ParseFailure => (HEADER_PREFIX.test(t) ? t : { error: `${code(t)} is not a header-name prefix`, fix: 'use printable ASCII without spaces or colons, e.g. X-MS-Exchange-Organization-' }), {
      pattern: HEADER_PREFIX.source,
      description: 'A header-name prefix (case-insensitive).',
      examples: ['X-MS-Exchange-Organization-'],
    }),
  );

/** RFC 3463 `class.subject.detail`, or empty (only for 2xx/3xx replies). */
const ENHANCED = /^(?:[245]\.(?:0|[1-9][0-9]{0,2})\.(?:0|[1-9][0-9]{0,2}))?$/;
const enhancedCode = (): Decoder<string> =>
  scalar(['string'], (v, at) => (ENHANCED.test(String(v)) ? String(v) : at.fail(`${code(String(v))} is not an enhanced status code`, 'write class.subject.detail with class 2, 4 or 5, e.g. 5.7.1')), {
    pattern: ENHANCED.source,
    examples: ['5.7.1'],
  });

const REPLY_FIELDS = {
  code: required(integer(200, 599), 'add `code: 550`', { description: 'Reply code, 200–599.', examples: [550] }),
  enhanced: required(enhancedCode(), 'add `enhanced: 5.7.1` (`""` only for 2xx/3xx replies)', {
    description: 'Enhanced status code class.subject.detail whose class is the first digit of code; "" only for 2xx/3xx.',
  }),
  text: required(string({ minLength: 1, maxLength: 400, singleLine: true }), 'add `text: ...`', {
    description: 'Reply text, one line, up to 400 characters; may contain {fqdn} and {client_ip}.',
  }),
  disconnect: withDefault(scalar(['boolean'], (v) => v === true), false, { description: 'Close the session after sending this reply.' }),
};

/**
 * A reply override for `reason`, kept in the class the reason needs: a success reason keeps a
 * success reply, a refusal stays a refusal, and an engine failure is always temporary (4xx).
 */
function reply(reason: Reason): Decoder<Reply> {
  const base = obj(REPLY_FIELDS, { description: 'An SMTP reply.', noun: 'this reply override' });
  return named('reply', refine(base, (r, at) => {
    const cls = String(r.code)[0] ?? '';
    const success = reason.startsWith('ok_');
    const engine = reason.startsWith('engine_error');
    const dflt = REPLY_CATALOGUE[reason].exchange;
    if (!(success ? ['2', '3'] : engine ? ['4'] : ['4', '5']).includes(cls)) {
      const what = success ? 'a success reply (2xx/3xx)' : engine ? 'a temporary failure (4xx)' : 'a refusal (4xx or 5xx)';
      return at.issues.add(r.where.value('code'), `reason ${code(reason)} needs ${what}, not ${r.code}`, `use the default ${dflt.code} or another code of that class`), BAD;
    }
    if (r.disconnect && success) return at.issues.add(r.where.value('disconnect'), 'only a refusal can close the connection', 'remove `disconnect`'), BAD;
    const example = dflt.enhanced !== '' && dflt.enhanced[0] === cls ? dflt.enhanced : `${cls}.7.1`;
    if (r.enhanced === '' && r.code >= 400) {
      return at.issues.add(r.where.value('enhanced'), `a ${cls}xx reply needs an enhanced status code`, `e.g. ${code(`enhanced: ${example}`)}`), BAD;
    }
    if (r.enhanced !== '' && r.enhanced[0] !== cls) {
      const fix = cls === '2' || cls === '4' || cls === '5' ? `use class ${cls}, e.g. ${code(example)}` : `use ${code('""')} for a ${cls}xx reply`;
      return at.issues.add(r.where.value('enhanced'), `enhanced status code ${code(r.enhanced)} has class ${r.enhanced[0] ?? ''} but reply code ${r.code} is class ${cls}`, fix), BAD;
    }
    return { code: r.code, enhanced: r.enhanced, text: r.text, ...(r.disconnect ? { disconnect: true } : {}) };
  }));
}

function describeReply(r: Reply): string {
  return `${r.code}${r.enhanced === '' ? '' : ` ${r.enhanced}`} ${r.text}${r.disconnect === true ? ' (then disconnect)' : ''}`;
}

/** Reply overrides keyed by reason. */
export function replies(): Decoder<Readonly<Record<string, Reply>>> {
  const fields = Object.fromEntries(
    REASONS.map((reason) => {
      const d = REPLY_CATALOGUE[reason];
      return [reason, optional(reply(reason), { description: `Override for reason \`${reason}\`. Default, dialect exchange: ${describeReply(d.exchange)}; dialect rfc: ${describeReply(d.rfc)}.` })];
    }),
  );
  const dict = obj(fields, {
    description: 'Reply overrides keyed by reason.',
    unknownKey: (k) => [`unknown reply reason ${code(k)}`, didYouMean(k, REASONS, `known reasons: ${REASONS.join(', ')}`)],
  });
  return named('replies', refine(dict, (r) => {
    const out: Record<string, Reply> = {};
    for (const reason of REASONS) {
      const v = r[reason] as Reply | undefined;
      if (v !== undefined) out[reason] = v;
    }
    return out;
  }));
}

/** A next hop (engine/config/endpoints.ts); a relative Maildir is relative to `configFile`. */
export const nextHop = (configFile: string): Decoder<NextHop> =>
  named(
    'nextHop',
    parsed((t) => parseNextHop(t, configFile), {
      pattern: '^\\s*(?:(?:smtp|lmtp)://\\S+|lmtp:/\\S*|maildir:\\S+)\\s*$',
      description: 'Where accepted mail goes: smtp://host:port, lmtp://host:port, lmtp:/path.sock or maildir:/dir (relative to the configuration file).',
      examples: ['smtp://127.0.0.1:10025', 'lmtp:/run/dovecot/lmtp', 'maildir:mail'],
    }),
  );

/** `{ listen: ... }` of the milter or the policy server. */
export const listener = (what: string): Decoder<AdapterListener> =>
  refine(
    obj(
      {
        listen: required(parsed(parseListen, { pattern: '^\\s*(?:inet:[0-9]+@\\S+|unix:/\\S*)\\s*$', examples: ['inet:8891@127.0.0.1', 'unix:/run/mta-policy/milter.sock'] }), 'add `listen: "inet:8891@127.0.0.1"`', {
          description: `Where the ${what} listens: inet:PORT@HOST (an IPv4 or IPv6 address) or unix:/absolute/path.`,
        }),
      },
      { description: `The ${what} listener.` },
    ),
    (l, at) => ({ listen: l.listen, source: at.issues.ref(at) }),
  );
