/**
 * Certificates for TLS tests, made with the `openssl` command in a temporary
 * folder: a test CA, and P-256 certificates it signs for `localhost` and
 * 127.0.0.1, usable by servers and as client certificates. Valid one day.
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './children.js';

/** A certificate and its private key, as PEM file paths. */
export interface CertFiles {
  cert: string;
  key: string;
}

export interface TestCa {
  /** The folder holding every file. */
  dir: string;
  /** The CA certificate's PEM file (what clients and servers trust). */
  ca: string;
  /** A new certificate for `localhost` and 127.0.0.1 signed by this CA, in `<name>.crt` and `<name>.key`. */
  issue(name: string): CertFiles;
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'pipe', timeout: 10_000 });
}

/** A fresh CA in a temporary folder. */
export function testCa(): TestCa {
  const dir = tempDir('switchboard-tls-');
  openssl(['req', '-x509', ...EC, '-days', '1', '-subj', '/CN=Switchboard test CA', '-keyout', 'ca.key', '-out', 'ca.crt'], dir);
  const ext = join(dir, 'leaf.ext');
  writeFileSync(ext, 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n');
  return {
    dir,
    ca: join(dir, 'ca.crt'),
    issue(name) {
      openssl(['req', '-new', ...EC, '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.csr`], dir);
      openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1', '-extfile', ext, '-out', `${name}.crt`], dir);
      return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
    },
  };
}

/** The SHA-256 fingerprint of the (first) certificate in a PEM file, as `getPeerCertificate().fingerprint256` writes it. */
export function fingerprint(certFile: string): string {
  return new X509Certificate(readFileSync(certFile)).fingerprint256;
}
