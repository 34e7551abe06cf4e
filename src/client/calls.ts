/**
 * The request bodies of the client's calls (`publish`, `send`, `rpc`),
 * checked before anything is sent: a bad argument throws `bad_request` at
 * once instead of costing a round trip.
 */
import { ErrorCode, isValidChannel, isValidUserId, RPC_METHOD } from '../protocol/index.js';
import { ClientError } from './errors.js';
import type { RequestBody } from './requests.js';

function checkData(data: unknown): void {
  if (data === undefined) throw new ClientError(ErrorCode.BadRequest, 'data must not be undefined');
}

/** A `publish` of `data` to `channel`. */
export function publishBody(channel: string, data: unknown): RequestBody {
  if (!isValidChannel(channel)) {
    throw new ClientError(ErrorCode.BadRequest, `invalid channel name ${JSON.stringify(channel)}`);
  }
  checkData(data);
  return { type: 'publish', channel, data };
}

/** A `send` of `data` to every session of `user`. */
export function sendBody(user: string, data: unknown): RequestBody {
  if (!isValidUserId(user)) throw new ClientError(ErrorCode.BadRequest, `invalid user id ${JSON.stringify(user)}`);
  checkData(data);
  return { type: 'send', user, data };
}

/** An `rpc` call of the backend's `method` with `data`. */
export function rpcBody(method: string, data: unknown): RequestBody {
  if (!RPC_METHOD.test(method)) {
    throw new ClientError(ErrorCode.BadRequest, `invalid rpc method ${JSON.stringify(method.slice(0, 140))}: 1-128 characters of A-Za-z0-9_.:/-`);
  }
  checkData(data);
  return { type: 'rpc', method, data };
}
