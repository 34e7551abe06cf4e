/**
 * Connection tokens (JWT): HS256 with `--secret`, RS256 or ES256 with
 * `--public-key`. `alg: none`, other algorithms and tampered signatures are
 * refused. The policy (`TokenPolicy`): `exp` required, `aud`/`iss` checked
 * when set, a longest lifetime, and a clock-skew tolerance for `exp`, `nbf`
 * and `iat` (a token issued in the future is refused).
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

/** What a token must satisfy beyond its signature (the `--jwt-*` settings). */
export interface TokenPolicy {
  /** The `aud` a token must name (`--jwt-audience`); none: not checked. */
  audience?: string;
  /** The `iss` a token must carry (`--jwt-issuer`); none: not checked. */
  issuer?: string;
  /** Longest lifetime accepted, seconds (`--jwt-max-lifetime`): `exp − iat`, or `exp − now` without `iat`. */
  maxLifetime: number;
  /** Seconds of clock difference tolerated for `exp`, `nbf` and `iat` (`--jwt-clock-skew`). */
  clockSkew: number;
}

/** 24 hours of lifetime at most, 30 seconds of skew. */
export const DEFAULT_TOKEN_POLICY: Readonly<TokenPolicy> = { maxLifetime: 24 * 3600, clockSkew: 30 };

interface KeyChoice {
  alg: string;
  key: KeyObject;
}

export class TokenVerifier {
  private readonly keys: KeyChoice[] = [];
  private readonly policy: TokenPolicy;

  /** `publicKey` is PEM text (SPKI) of an RSA or P-256 EC key; `policy` fields left out take `DEFAULT_TOKEN_POLICY`'s. */
  constructor(opts: { secret?: string; publicKey?: string; policy?: Partial<TokenPolicy> }) {
    this.policy = { ...DEFAULT_TOKEN_POLICY, ...compactPolicy(opts.policy) };
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
    const { audience, issuer, clockSkew } = this.policy;
    let payload;
    try {
      ({ payload } = await jwtVerify(token, (header: JWTHeaderParameters) => this.keyFor(header.alg), {
        algorithms,
        requiredClaims: ['exp'],
        clockTolerance: clockSkew,
        ...(audience !== undefined ? { audience } : {}),
        ...(issuer !== undefined ? { issuer } : {}),
      }));
    } catch (err) {
      throw new TokenError(describe(err));
    }
    this.checkTimes(payload.exp!, payload.iat);
    if (!isValidUserId(payload.sub)) throw new TokenError('token has no valid "sub" (user id)');
    const channels = payload.channels;
    if (channels !== undefined && (!Array.isArray(channels) || !channels.every((c) => typeof c === 'string'))) {
      throw new TokenError('token claim "channels" must be an array of strings');
    }
    return { user: payload.sub, channels: (channels as string[] | undefined) ?? [], exp: payload.exp! };
  }

  /** A token issued in the future, or one that lives longer than the policy allows, is refused (jose checked `exp` itself). */
  private checkTimes(exp: number, iat: number | undefined): void {
    const now = Math.floor(Date.now() / 1000);
    const { maxLifetime, clockSkew } = this.policy;
    if (iat !== undefined && iat > now + clockSkew) throw new TokenError('token "iat" is in the future');
    if (exp - (iat ?? now) > maxLifetime) {
      throw new TokenError(`token lives longer than the node accepts (exp − iat over ${maxLifetime} s): issue shorter-lived tokens`);
    }
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
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    return err.reason === 'missing' ? `token has no "${err.claim}" claim, which is required` : `token claim "${err.claim}" is invalid`;
  }
  if (err instanceof TokenError) return err.message;
  return 'token is malformed';
}

/** The policy fields that are set, so that undefined ones do not hide the defaults. */
function compactPolicy(policy: Partial<TokenPolicy> | undefined): Partial<TokenPolicy> {
  return Object.fromEntries(Object.entries(policy ?? {}).filter(([, v]) => v !== undefined)) as Partial<TokenPolicy>;
}
