/** The `--public-key` file: read once at startup, checked to be a PEM public key usable for RS256 or ES256. */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { ConfigError, describeReadError } from './errors.js';

/** Reads a file as UTF-8 text; throws a Node fs error (with `code`) when it cannot. */
export type ReadFile = (path: string) => string;

const PEM_HEADER = '-----BEGIN PUBLIC KEY-----';

/**
 * The PEM text of the public key at `path` (absolute). `origin` says where
 * the path came from. Throws `ConfigError` when the file cannot be read or
 * does not hold an RSA or P-256 EC public key in PEM (SPKI) form.
 */
export function readPublicKey(path: string, origin: string, readFile: ReadFile): string {
  let text: string;
  try {
    text = readFile(path);
  } catch (err) {
    throw new ConfigError(`cannot read the public key file ${path} (from ${origin}): ${describeReadError(err)}`);
  }
  if (!text.includes(PEM_HEADER)) {
    const hint = /PRIVATE KEY-----/.test(text)
      ? 'it holds a private key; give the public one (openssl pkey -in key.pem -pubout)'
      : `expected a PEM file starting with ${PEM_HEADER}`;
    throw new ConfigError(`the public key file ${path} (from ${origin}) is not a PEM public key: ${hint}`);
  }
  let key: KeyObject;
  try {
    key = createPublicKey(text);
  } catch {
    throw new ConfigError(`the public key file ${path} (from ${origin}) is not a valid PEM public key: check that it is not truncated`);
  }
  if (!usableForTokens(key)) {
    throw new ConfigError(
      `the public key file ${path} (from ${origin}) holds ${describeKey(key)}: use an RSA key (RS256) or a P-256 EC key (ES256)`,
    );
  }
  return text;
}

/** The keys the token verifier accepts: RSA for RS256, EC on P-256 for ES256. */
function usableForTokens(key: KeyObject): boolean {
  return key.asymmetricKeyType === 'rsa' || (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1');
}

function describeKey(key: KeyObject): string {
  const curve = key.asymmetricKeyDetails?.namedCurve;
  return `an ${key.asymmetricKeyType ?? 'unknown'} key${curve === undefined ? '' : ` on curve ${curve}`}`;
}
