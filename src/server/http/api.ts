/**
 * The server API for business services (docs/api.md): JSON over HTTP,
 * `Authorization: Bearer <api-key>`, errors as `{"error": {code, message}}`.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  CloseCode,
  ErrorCode,
  SwitchboardError,
  MAX_BROADCAST_CHANNELS,
  REPLAYED_HEADER,
  toErrorBody,
  type AdminClusterAnswer,
  type ApiAnswer,
  type BatchAnswer,
  type BatchRequest,
  type BroadcastAnswer,
  type BroadcastRequest,
  type DisconnectAnswer,
  type DisconnectRequest,
  type HistoryAnswer,
  type NodeInfo,
  type NodesAnswer,
  type PresenceAnswer,
  type PublishAnswer,
  type PublishRequest,
  type RouteAnswer,
  type SendRequest,
  type UserAnswer,
} from '../../protocol/index.js';
import type { PublishReceipt } from '../../brokers/broker.js';
import { dataFromJson, requireChannel, requireIdempotencyKey, requireUser, type Commands } from '../core/commands.js';
import type { Gateway } from '../core/gateway.js';
import type { Metrics } from '../metrics.js';
import { OPENAPI, type OpenApiDocument } from './openapi.js';
import { readJsonObject, sendError, sendJson } from './respond.js';

export interface ApiContext {
  gateway: Gateway;
  /** Publishing and reading, checked as for an in-process caller. */
  commands: Commands;
  metrics: Metrics;
  apiKeys: string[];
  /** With no API key configured, `--insecure` leaves the API open. */
  insecure: boolean;
  maxBodyBytes: number;
  /** Every live node of the cluster. */
  nodes: () => NodeInfo[];
  /** The node a user should connect to (its owner under hash-ring routing, else this node) and its WebSocket URL. */
  route: (user: string) => RouteAnswer;
  /** Close every session of `user` on every node; resolves with how many were closed. */
  disconnectUser: (user: string, code: number, reason: string) => Promise<number>;
  /** `GET /api/admin/cluster`: every live node with its load, for the dashboard at `/admin`. */
  adminCluster?: () => AdminClusterAnswer;
}

type Handler = (api: ServerApi, req: IncomingMessage, params: string[], url: URL, res: ServerResponse) => Promise<ApiAnswer | OpenApiDocument>;

/** A request body before its checks: the protocol's field names, values not yet known. */
type Unchecked<T> = { [K in keyof T]?: unknown };

interface Route {
  method: string;
  /** The path as an OpenAPI template: each `{name}` is one segment, handed to the handler percent-decoded. */
  template: string;
  path: RegExp;
  handler: Handler;
  /** Open without an API key (it reveals only what clients are told anyway). */
  open: boolean;
}

/** A route whose path is matched by its template, so that the router and the description share one spelling. */
function endpoint(method: string, template: string, handler: Handler, open = false): Route {
  const source = template.replace(/\./g, '\\.').replace(/\{[^}/]+\}/g, '([^/]+)');
  return { method, template, path: new RegExp(`^${source}$`), handler, open };
}

export class ServerApi {
  private static readonly routes: readonly Route[] = [
    endpoint('POST', '/api/publish', (api, req, _p, _u, res) => api.publish(req, res)),
    endpoint('POST', '/api/send', (api, req, _p, _u, res) => api.send(req, res)),
    endpoint('POST', '/api/broadcast', (api, req) => api.broadcast(req)),
    endpoint('POST', '/api/batch', (api, req) => api.batch(req)),
    endpoint('GET', '/api/users/{user}', (api, _r, p) => api.user(p[0] ?? '')),
    endpoint('GET', '/api/presence/{channel}', (api, _r, p) => api.presence(p[0] ?? '')),
    endpoint('GET', '/api/history/{channel}', (api, _r, p, url) => api.history(p[0] ?? '', url)),
    endpoint('POST', '/api/disconnect', (api, req) => api.disconnect(req)),
    endpoint('GET', '/api/nodes', async (api) => api.nodes()),
    endpoint('GET', '/api/admin/cluster', async (api) => api.adminCluster()),
    endpoint('GET', '/api/route', async (api, _r, _p, url) => api.route(url), true),
    endpoint('GET', '/api/openapi.json', async () => OPENAPI, true),
  ];

  /** Every endpoint this router serves, by method and OpenAPI path template (the description's test holds them to it). */
  static readonly endpoints: ReadonlyArray<{ method: string; path: string; open: boolean }> = ServerApi.routes.map(
    ({ method, template, open }) => ({ method, path: template, open }),
  );

  private readonly keyDigests: Buffer[];

  constructor(private readonly ctx: ApiContext) {
    this.keyDigests = ctx.apiKeys.map(digest);
  }

  async handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    try {
      const pathMatches = ServerApi.routes.filter((r) => r.path.test(url.pathname));
      if (pathMatches.length > 0 && pathMatches.every((r) => r.open)) {
        // A browser on another origin may ask where to connect, or read the description.
        res.setHeader('access-control-allow-origin', '*');
      } else {
        this.authorize(req);
      }
      if (pathMatches.length === 0) throw new SwitchboardError(ErrorCode.NotFound, `no such endpoint: ${url.pathname}`);
      const route = pathMatches.find((r) => r.method === req.method);
      if (!route) {
        res.setHeader('allow', pathMatches.map((r) => r.method).join(', '));
        sendError(res, { code: ErrorCode.BadRequest, message: `method ${req.method ?? ''} not allowed` }, 405);
        return;
      }
      if (route.method === 'POST' && !isJson(req.headers['content-type'])) {
        // A browser sends text/plain or a form across sites without asking first; application/json it must ask for (CORS), and is refused.
        sendError(res, { code: ErrorCode.BadRequest, message: 'the request body must be JSON, sent as "Content-Type: application/json"' }, 415);
        return;
      }
      const params = (route.path.exec(url.pathname) ?? []).slice(1).map(decodeParam);
      sendJson(res, 200, await route.handler(this, req, params, url, res));
    } catch (err) {
      const error = toErrorBody(err);
      this.ctx.metrics.errors.inc({ code: error.code });
      sendError(res, error);
    }
  }

  private authorize(req: IncomingMessage): void {
    if (this.keyDigests.length === 0) {
      if (this.ctx.insecure) return;
      throw new SwitchboardError(ErrorCode.Unauthorized, 'the server API is disabled: start the node with --api-key');
    }
    const header = req.headers.authorization ?? '';
    const match = /^Bearer (.+)$/i.exec(header);
    if (!match?.[1]) throw new SwitchboardError(ErrorCode.Unauthorized, 'missing "Authorization: Bearer <api-key>"');
    const given = digest(match[1]);
    if (!this.keyDigests.some((k) => timingSafeEqual(k, given))) {
      throw new SwitchboardError(ErrorCode.Unauthorized, 'invalid API key');
    }
  }

  private nodes(): NodesAnswer {
    return { nodes: this.ctx.nodes() };
  }

  private adminCluster(): AdminClusterAnswer {
    if (!this.ctx.adminCluster) throw new SwitchboardError(ErrorCode.NotFound, 'no cluster view on this node');
    return this.ctx.adminCluster();
  }

  /** `GET /api/route?user=`: where `user` should connect. */
  private async route(url: URL): Promise<RouteAnswer> {
    return this.ctx.route(requireUser(url.searchParams.get('user') ?? undefined));
  }

  // Publishing checks no readiness: the gateway waits for an unreachable
  // broker up to the publish deadline, and a draining node still publishes.
  private async publish(req: IncomingMessage, res: ServerResponse): Promise<PublishAnswer> {
    const body: Unchecked<PublishRequest> = await readJsonObject(req, this.ctx.maxBodyBytes);
    return answered(res, await this.ctx.commands.publish(body.channel, body.data, { idempotencyKey: idempotencyKey(req, body) }));
  }

  private async send(req: IncomingMessage, res: ServerResponse): Promise<PublishAnswer> {
    const body: Unchecked<SendRequest> = await readJsonObject(req, this.ctx.maxBodyBytes);
    return answered(res, await this.ctx.commands.send(body.user, body.data, { idempotencyKey: idempotencyKey(req, body) }));
  }

  /** `POST /api/batch`: each command carries its own idempotency key (the header would name them all). */
  private async batch(req: IncomingMessage): Promise<BatchAnswer> {
    if (req.headers['idempotency-key'] !== undefined) {
      throw new SwitchboardError(ErrorCode.BadRequest, 'a batch takes an "idempotencyKey" in each command, not the Idempotency-Key header');
    }
    const body: Unchecked<BatchRequest> = await readJsonObject(req, this.ctx.maxBodyBytes);
    const answer = await this.ctx.commands.batch(body.commands);
    for (const r of answer.results) if ('error' in r) this.ctx.metrics.errors.inc({ code: r.error.code });
    return answer;
  }

  private async broadcast(req: IncomingMessage): Promise<BroadcastAnswer> {
    const body: Unchecked<BroadcastRequest> = await readJsonObject(req, this.ctx.maxBodyBytes);
    const channels = body.channels;
    if (!Array.isArray(channels) || channels.length === 0 || channels.length > MAX_BROADCAST_CHANNELS) {
      throw new SwitchboardError(
        ErrorCode.BadRequest,
        `"channels" must be an array of 1 to ${MAX_BROADCAST_CHANNELS} channel names`,
      );
    }
    channels.forEach(requireChannel);
    dataFromJson(body.data);
    const key = idempotencyKey(req, body);
    const results = await Promise.all(
      (channels as string[]).map((c) =>
        this.ctx.gateway.publish(c, body.data, { idempotencyKey: key }).then(
          ({ duplicate: _d, ...result }) => result,
          (err: unknown) => ({ error: toErrorBody(err) }),
        ),
      ),
    );
    return { results };
  }

  private user(user: string): Promise<UserAnswer> {
    return this.ctx.commands.user(user);
  }

  private presence(channel: string): Promise<PresenceAnswer> {
    return this.ctx.commands.presence(channel);
  }

  private history(channel: string, url: URL): Promise<HistoryAnswer> {
    const since = optionalInt(url.searchParams.get('since'), 'since');
    const limit = optionalInt(url.searchParams.get('limit'), 'limit');
    return this.ctx.commands.history(channel, { ...(since === undefined ? {} : { since }), ...(limit === undefined ? {} : { limit }) });
  }

  private async disconnect(req: IncomingMessage): Promise<DisconnectAnswer> {
    const body: Unchecked<DisconnectRequest> = await readJsonObject(req, this.ctx.maxBodyBytes);
    const user = requireUser(body.user);
    const code = body.code ?? CloseCode.Disconnected;
    if (typeof code !== 'number' || !Number.isInteger(code) || code < 4000 || code > 4199) {
      throw new SwitchboardError(ErrorCode.BadRequest, '"code" must be an integer from 4000 to 4199');
    }
    const reason = body.reason ?? 'disconnected by the server';
    if (typeof reason !== 'string' || Buffer.byteLength(reason) > 120) {
      throw new SwitchboardError(ErrorCode.BadRequest, '"reason" must be a string of at most 120 bytes');
    }
    return { sessions: await this.ctx.disconnectUser(user, code, reason) };
  }
}

/** `application/json`, with parameters (`; charset=utf-8`) or not, in any case. */
function isJson(contentType: string | undefined): boolean {
  return contentType?.split(';')[0]?.trim().toLowerCase() === 'application/json';
}

function digest(key: string): Buffer {
  return createHash('sha256').update(key).digest();
}

/** A percent-decoded path parameter; malformed escapes (`%ZZ`, `%C0%80`) are the caller's error, not a 500. */
function decodeParam(p: string): string {
  try {
    return decodeURIComponent(p);
  } catch {
    throw new SwitchboardError(ErrorCode.BadRequest, 'path parameter has a malformed percent-encoding');
  }
}

function optionalInt(v: string | null, name: string): number | undefined {
  if (v === null || v === '') return undefined;
  const n = /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < 0) throw new SwitchboardError(ErrorCode.BadRequest, `"${name}" must be a non-negative integer`);
  return n;
}

/** The body's `idempotencyKey` or the `Idempotency-Key` header (both: they must agree). */
function idempotencyKey(req: IncomingMessage, body: { idempotencyKey?: unknown }): string | undefined {
  const header = req.headers['idempotency-key'];
  const fromHeader = requireIdempotencyKey(Array.isArray(header) ? header[0] : header, 'the Idempotency-Key header');
  const fromBody = requireIdempotencyKey(body.idempotencyKey);
  if (fromBody !== undefined && fromHeader !== undefined && fromBody !== fromHeader) {
    throw new SwitchboardError(ErrorCode.BadRequest, '"idempotencyKey" and the Idempotency-Key header differ');
  }
  return fromBody ?? fromHeader;
}

/** The answer to a publish: `{offset, epoch}`, the same for a repeat, which the `Idempotent-Replayed` header marks. */
function answered(res: ServerResponse, receipt: PublishReceipt): PublishAnswer {
  const { duplicate, ...result } = receipt;
  if (duplicate) res.setHeader(REPLAYED_HEADER, 'true');
  return result;
}
