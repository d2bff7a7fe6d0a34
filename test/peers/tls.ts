/** Self-signed server certificates for TLS tests, made with the openssl CLI (node has no X.509 writer). */
import { chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { BIN } from './bins.js';
import { runOk } from './proc.js';

/** PEM files of one certificate and its private key. */
export interface TlsFiles {
  readonly cert: string;
  readonly key: string;
}

/** Options for {@link makeSelfSignedCert}. */
export interface CertOptions {
  /** Subject CN and first DNS subjectAltName. Default `localhost`. */
  readonly commonName?: string;
  /** More DNS names; 127.0.0.1 and ::1 are always added as IP SANs. */
  readonly dnsNames?: readonly string[];
  /** RSA-2048 (default: what most deployments and the reference measurements use) or EC P-256. */
  readonly keyType?: 'rsa' | 'ec';
  /** File name stem inside `dir`. Default `server`. */
  readonly name?: string;
}

/** Writes `<dir>/<name>.pem` and `<dir>/<name>.key` (mode 0600, as Postfix and Sendmail demand). */
export async function makeSelfSignedCert(dir: string, opts: CertOptions = {}): Promise<TlsFiles> {
  const cn = opts.commonName ?? 'localhost';
  const name = opts.name ?? 'server';
  const files: TlsFiles = { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
  const san = [cn, ...(opts.dnsNames ?? [])].map((d) => `DNS:${d}`).concat('IP:127.0.0.1', 'IP:::1').join(',');
  const keyArgs = opts.keyType === 'ec' ? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'] : ['-newkey', 'rsa:2048'];
  await runOk(BIN.openssl, [
    'req', '-x509', ...keyArgs, '-nodes', '-days', '30', '-subj', `/CN=${cn}`,
    '-addext', `subjectAltName=${san}`, '-keyout', files.key, '-out', files.cert,
  ], { timeoutMs: 30_000 });
  await chmod(files.key, 0o600);
  return files;
}
