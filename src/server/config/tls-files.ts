/**
 * The `--tls-cert` and `--tls-key` files: read at startup and again on
 * SIGHUP, checked to hold a certificate chain and the private key that
 * matches its first certificate, so that a node never starts (or reloads)
 * with a pair that would fail every handshake.
 */
import { createSecureContext } from 'node:tls';
import { ConfigError, describeReadError } from './errors.js';
import type { ReadFile } from './keys.js';

/** Where the certificate chain and the private key are (absolute paths), and where each path came from. */
export interface TlsFiles {
  cert: string;
  key: string;
  /** `--tls-cert`, `SWITCHBOARD_TLS_CERT`, …; default: the flag. */
  certOrigin?: string;
  keyOrigin?: string;
}

/** The PEM text of a checked pair, ready for `https.createServer` or `setSecureContext`. */
export interface TlsPair {
  cert: string;
  key: string;
}

const CERT_HEADER = '-----BEGIN CERTIFICATE-----';

/**
 * Reads and checks the pair; throws `ConfigError` saying which file is
 * wrong and how: unreadable, not a PEM certificate, no private key, or a
 * key that does not belong to the certificate.
 */
export function readTlsPair(files: TlsFiles, readFile: ReadFile): TlsPair {
  const certFrom = `${files.cert} (from ${files.certOrigin ?? '--tls-cert'})`;
  const keyFrom = `${files.key} (from ${files.keyOrigin ?? '--tls-key'})`;
  const cert = readText(files.cert, certFrom, 'certificate', readFile);
  const key = readText(files.key, keyFrom, 'private key', readFile);
  if (!cert.includes(CERT_HEADER)) {
    throw new ConfigError(`the TLS certificate file ${certFrom} is not a PEM certificate: expected a file starting with ${CERT_HEADER}`);
  }
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key)) {
    const hint = key.includes(CERT_HEADER) ? 'it holds a certificate; give the private key' : 'expected a PEM private key (-----BEGIN PRIVATE KEY-----)';
    throw new ConfigError(`the TLS key file ${keyFrom} is not a PEM private key: ${hint}`);
  }
  try {
    createSecureContext({ cert, key });
  } catch (err) {
    const mismatch = (err as { code?: unknown }).code === 'ERR_OSSL_X509_KEY_VALUES_MISMATCH';
    throw new ConfigError(
      mismatch
        ? `the TLS key file ${keyFrom} does not match the certificate in ${certFrom}: give the key the certificate was made for`
        : `the TLS certificate ${certFrom} or key ${keyFrom} cannot be used: ${describeReadError(err)}`,
    );
  }
  return { cert, key };
}

function readText(path: string, from: string, what: string, readFile: ReadFile): string {
  try {
    return readFile(path);
  } catch (err) {
    throw new ConfigError(`cannot read the TLS ${what} file ${from}: ${describeReadError(err)}`);
  }
}
