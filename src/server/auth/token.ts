/**
 * Connection tokens (JWT): HS256 with `--secret`, RS256 or ES256 with
 * `--public-key`. `exp` is enforced when present; `alg: none`, other
 * algorithms and tampered signatures are refused.
 */
import { createPublicKey, createSecretKey, type KeyObject } from 'node:crypto';
import { errors as joseErrors, jwtVerify, type JWTHeaderParameters } from 'jose';
import { isValidUserId } from '../../protocol/index.js';

export interface Identity {
  user: string;
  /** Channel patterns (with `*`) the token grants beyond public namespaces. */
  channels: string[];
  /** Expiry, seconds since the Unix epoch, when the token has one. */
  exp?: number;
  /**
   * Set only when the connect hook named the user: its `meta` (`null` when
   * it gave none), kept on the session and sent to the refresh hook.
   */
  meta?: unknown;
}

export class TokenError extends Error {
  override name = 'TokenError';
}

interface KeyChoice {
  alg: string;
  key: KeyObject;
}

export class TokenVerifier {
  private readonly keys: KeyChoice[] = [];

  /** `publicKey` is PEM text (SPKI) of an RSA or P-256 EC key. */
  constructor(opts: { secret?: string; publicKey?: string }) {
    if (opts.secret) this.keys.push({ alg: 'HS256', key: createSecretKey(Buffer.from(opts.secret, 'utf8')) });
    if (opts.publicKey) {
      const key = createPublicKey(opts.publicKey);
      if (key.asymmetricKeyType === 'rsa') this.keys.push({ alg: 'RS256', key });
      else if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') {
        this.keys.push({ alg: 'ES256', key });
      } else {
        throw new TokenError('the public key must be an RSA key (RS256) or a P-256 EC key (ES256)');
      }
    }
  }

  get configured(): boolean {
    return this.keys.length > 0;
  }

  async verify(token: string): Promise<Identity> {
    if (!this.configured) throw new TokenError('tokens are not accepted: the node has no --secret or --public-key');
    const algorithms = this.keys.map((k) => k.alg);
    let payload;
    try {
      ({ payload } = await jwtVerify(token, (header: JWTHeaderParameters) => this.keyFor(header.alg), { algorithms }));
    } catch (err) {
      throw new TokenError(describe(err));
    }
    if (!isValidUserId(payload.sub)) throw new TokenError('token has no valid "sub" (user id)');
    const channels = payload.channels;
    if (channels !== undefined && (!Array.isArray(channels) || !channels.every((c) => typeof c === 'string'))) {
      throw new TokenError('token claim "channels" must be an array of strings');
    }
    const identity: Identity = { user: payload.sub, channels: (channels as string[] | undefined) ?? [] };
    if (payload.exp !== undefined) identity.exp = payload.exp;
    return identity;
  }

  private keyFor(alg: string | undefined): KeyObject {
    const choice = this.keys.find((k) => k.alg === alg);
    if (!choice) throw new TokenError(`token algorithm ${String(alg)} is not accepted`);
    return choice.key;
  }
}

function describe(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return 'token expired';
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'token signature is invalid';
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'token algorithm is not accepted';
  if (err instanceof joseErrors.JWTClaimValidationFailed) return `token claim "${err.claim}" is invalid`;
  if (err instanceof TokenError) return err.message;
  return 'token is malformed';
}
