/**
 * Identity in the first frame (SPEC "Client connection"): an upgrade that
 * names nobody — no `?token=`, no `Authorization` header, no connect hook to
 * ask — is accepted, and its first frame must be `{"type": "connect",
 * "token"}` within `--first-frame-timeout`, so that browsers keep tokens out
 * of URLs and proxy logs. Anything else first, a refused token, or silence
 * closes the connection with 4001 before any session exists. Frames sent
 * right after the connect frame wait for the token check and are handed on.
 */
import type { WebSocket } from 'ws';
import { CloseCode, connectToken } from '../../protocol/index.js';
import { codecOfSubprotocol, parseMsgpack } from '../../protocol/msgpack.js';
import type { Identity } from '../auth/token.js';

/** Frames a client may send after `connect` while its token is checked; past it, close 4008. */
export const MAX_EARLY_FRAMES = 32;

/** A frame received before the session existed, to hand on once it does. */
export interface EarlyFrame {
  data: Buffer;
  isBinary: boolean;
}

/** Who the connect frame named, and the frames that followed it meanwhile. */
export interface FirstFrameOutcome {
  identity: Identity;
  early: EarlyFrame[];
}

/** Checks a token: its identity, or a rejection whose message becomes the close reason. */
export type Verify = (token: string) => Promise<Identity>;

/**
 * Wait up to `timeoutMs` (`--first-frame-timeout`) for the connect frame on
 * `ws` and check its token with `verify`. Resolves with the identity once it
 * is known, or with undefined when the connection was refused (and is being
 * closed) or closed by the client. Never rejects; leaves no listener on `ws`
 * once settled.
 */
export function awaitConnectFrame(ws: WebSocket, verify: Verify, timeoutMs: number): Promise<FirstFrameOutcome | undefined> {
  return new Promise((resolve) => {
    const early: EarlyFrame[] = [];
    let verifying = false;
    let settled = false;
    const settle = (outcome: FirstFrameOutcome | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ws.off('message', onMessage);
      ws.off('close', onClose);
      ws.off('error', onError);
      resolve(outcome);
    };
    const refuse = (code: number, reason: string): void => {
      settle(undefined);
      ws.close(code, reason.slice(0, 120));
    };
    const onMessage = (data: Buffer, isBinary: boolean): void => {
      if (verifying) {
        if (early.length >= MAX_EARLY_FRAMES) refuse(CloseCode.PolicyViolation, 'too many frames before welcome');
        else early.push({ data, isBinary });
        return;
      }
      const token = tokenOf(data, isBinary, ws.protocol);
      if (token === undefined) return refuse(CloseCode.Unauthorized, 'the first frame must be {"type": "connect", "token": "<JWT>"}');
      verifying = true;
      verify(token).then(
        (identity) => settle({ identity, early }),
        (err: unknown) => refuse(CloseCode.Unauthorized, err instanceof Error ? err.message : 'invalid token'),
      );
    };
    const onClose = (): void => settle(undefined);
    // ws closes the socket itself after an error (an oversized frame, say): 'close' settles.
    const onError = (): void => undefined;
    const timer = setTimeout(() => refuse(CloseCode.Unauthorized, `no connect frame within ${timeoutMs / 1000} s`), timeoutMs);
    ws.on('message', onMessage);
    ws.on('close', onClose);
    ws.on('error', onError);
  });
}

/** The token of a connect frame in the connection's codec; undefined for anything else. */
function tokenOf(data: Buffer, isBinary: boolean, protocol: string): string | undefined {
  if (codecOfSubprotocol(protocol) === 'msgpack') {
    if (!isBinary) return undefined;
    const parsed = parseMsgpack(data);
    return parsed.ok ? connectToken(parsed.value) : undefined;
  }
  if (isBinary) return undefined;
  try {
    return connectToken(JSON.parse(data.toString('utf8')) as unknown);
  } catch {
    return undefined;
  }
}
