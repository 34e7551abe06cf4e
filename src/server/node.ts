/**
 * A Switchboard node: HTTP server, WebSocket endpoint, server API, health,
 * metrics and the demo page, around the core (`Gateway`) and its broker.
 */
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Server as NetServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { CloseCode, ErrorCode } from '../protocol/index.js';
import { createBroker, type Broker } from '../brokers/index.js';
import { TokenVerifier } from './auth/token.js';
import { Quotas } from './core/quotas.js';
import { FrameHandler, type ChannelHooks } from './core/frame-handler.js';
import { Gateway } from './core/gateway.js';
import { Commands, dataFromJson, inProcessData, type ServerCommands } from './core/commands.js';
import type { Session } from './core/session.js';
import { Cluster } from '../cluster/cluster.js';
import { NodeEntries } from '../cluster/entries.js';
import type { ClusterRequest, NodeInfo } from '../cluster/messages.js';
import { ServerApi } from './http/api.js';
import { sendError, sendJson } from './http/respond.js';
import { Door, requestUrl } from './http/admit.js';
import { SseEndpoint } from './http/sse.js';
import { Upgrader } from './http/upgrade.js';
import { createNodeServer, readTlsFiles, reloadTls, tlsFilesOf } from './http/server.js';
import { hardenServer } from './http/harden.js';
import { createMetricsServer, sendMetrics } from './http/metrics-listener.js';
import { servePage } from './http/pages.js';
import { isNormalPath } from './http/path.js';
import { nodeOrigins } from './http/origin.js';
import { createLogger } from './logger.js';
import { Metrics } from './metrics.js';
import { clusterView } from './admin/cluster-view.js';
import { LoadMeter } from './admin/load-meter.js';
import { closeSpread, drainPlan } from './drain-pace.js';
import { sleep } from '../shared/time.js';
import { ROUTINGS, detectionMs, schemesOf, withDefaults, type NodeOptions, type NodeOptionsInput } from './options.js';
import { createRouting, HashRingRouting } from './routing/strategies.js';
import { HookClient } from './hooks/client.js';
import { RpcHook } from './hooks/rpc.js';
import { PublishHook } from './hooks/publish.js';
import { SubscribeHook } from './hooks/subscribe.js';
import { unsetHookProblem } from './config/namespaces.js';
import { ConnectHook } from './hooks/connect.js';
import { RefreshHook } from './hooks/refresh.js';
import { createWebhookSender, type WebhookSender } from './events/webhook.js';
import { createIngests } from './ingest/ingests.js';

export interface SwitchboardNode extends ServerCommands {
  /** This node's id. */
  readonly id: string;
  /** The TCP port actually bound (useful with `port: 0`). */
  readonly port: number;
  readonly options: NodeOptions;
  readonly log: Logger;
  /** The port `/metrics` is served on with `--metrics-port` (the one bound, with 0); absent: the main port. */
  readonly metricsPort?: number;
  /** `http://host:port` + path (`https://` with TLS), for tests and logs. */
  url(path?: string): string;
  /**
   * SIGHUP behaviour with TLS: read `tlsCert` and `tlsKey` again and use them
   * for new handshakes; open connections keep theirs. A bad pair keeps the
   * current one and is logged. Returns whether the new pair is in use.
   */
  reloadTls(): boolean;
  /**
   * SIGTERM behaviour: `/readyz` 503 and upgrades refused, leave the cluster,
   * close clients with 4100 a few at a time, keep listening a little while
   * (drain-pace.ts); resolves when done, within `drainTimeout`.
   */
  drain(): Promise<void>;
  /** Stop at once, closing every connection. */
  close(): Promise<void>;
}

/** After the cluster's detection time, a little more before dropping the entries of nodes nobody saw die. */
const SETTLE_MARGIN_MS = 1000;
/** How long a cluster-wide request (e.g. `/api/disconnect`) waits for the other nodes. */
const CLUSTER_REQUEST_TIMEOUT_MS = 3000;

/** What a node can be given instead of building it from its options. */
export interface NodeDeps {
  /** A broker to use instead of the one `options.broker` names (tests: several nodes on one `MemoryBus`). */
  broker?: Broker;
}

/** A namespace that asks a hook needs its URL, and a hook a key that signs it. */
function checkChannelHooks(options: NodeOptions): void {
  const unset = unsetHookProblem(options);
  if (unset !== undefined) throw new Error(unset);
  const signed = options.hookSecret !== undefined || options.webhookSecret !== undefined;
  if ((options.subscribeHook ?? options.publishHook) !== undefined && !signed) {
    throw new Error('subscribeHook and publishHook need hookSecret (or webhookSecret): hook requests are always signed');
  }
}

/** The subscribe and publish hooks of the URLs that are set, asked for the namespaces that say so. */
function channelHooks(options: NodeOptions, client: HookClient, gateway: Gateway): ChannelHooks {
  const policyOf = (channel: string) => gateway.namespaces.of(channel);
  return {
    ...(options.subscribeHook !== undefined ? { subscribe: new SubscribeHook(client, options.subscribeHook, policyOf) } : {}),
    ...(options.publishHook !== undefined ? { publish: new PublishHook(client, options.publishHook, policyOf, options.limits.maxFrameBytes) } : {}),
  };
}

export async function startNode(partial: NodeOptionsInput = {}, deps: NodeDeps = {}): Promise<SwitchboardNode> {
  const options = withDefaults(partial);
  const log = createLogger(options.nodeId, options.logLevel);
  // Read before anything is opened: a bad pair stops the start with nothing to undo.
  const tls = tlsFilesOf(options);
  const tlsPair = tls === undefined ? undefined : readTlsFiles(tls);
  const scheme = schemesOf(options);
  const metrics = new Metrics({ node: options.nodeId });
  const routing = createRouting(options.routing, options.nodeId, {
    vnodes: options.hashringVnodes,
    settleMs: detectionMs(options),
  });
  const broker =
    deps.broker ??
    (await createBroker(options.broker, { onError: (err, where) => log.warn({ err, where }, 'broker fault'), routes: routing.needs }));
  const missing = routing.needs.filter((r) => !broker.routes.includes(r));
  if (missing.length > 0) {
    await broker.close();
    throw new Error(
      `routing ${options.routing} needs ${missing.join(' and ')} routes, which the ${broker.kind} broker cannot carry: ` +
        `use routing ${ROUTINGS.filter((r) => createRouting(r, options.nodeId, { vnodes: 1, settleMs: 0 }).needs.every((n) => broker.routes.includes(n))).join(' or ')}`,
    );
  }
  const urlOf = (node: string): string | undefined =>
    node === options.nodeId ? publicUrl() : cluster.nodes().find((n) => n.id === node)?.url;
  const gateway = new Gateway(options.nodeId, options, broker, routing, metrics, log, {
    urlOf,
    isAlive: (node) => cluster.isAlive(node),
    announce: (frame) => cluster.announce(frame),
  });
  const entries = new NodeEntries(broker.store, options.nodeId, log);
  let webhook: WebhookSender | undefined;
  try {
    webhook = createWebhookSender(options, broker, metrics, log, () => cluster.nodes().length);
    const hook = [options.rpcHook, options.connectHook, options.refreshHook].some((url) => url !== undefined);
    if (hook && options.hookSecret === undefined && options.webhookSecret === undefined) {
      throw new Error('a hook (rpcHook, connectHook, refreshHook) needs hookSecret (or webhookSecret): hook requests are always signed');
    }
    if (options.refreshHook !== undefined && options.connectHook === undefined) {
      throw new Error('refreshHook needs connectHook: it refreshes the sessions that hook accepts');
    }
    checkChannelHooks(options);
  } catch (err) {
    await broker.close();
    throw err;
  }
  const verifier = new TokenVerifier({
    secret: options.secret,
    publicKey: options.publicKey,
    policy: { audience: options.jwtAudience, issuer: options.jwtIssuer, maxLifetime: options.jwtMaxLifetime, clockSkew: options.jwtClockSkew },
  });
  const hooks = new HookClient(
    { secret: options.hookSecret ?? options.webhookSecret, timeoutMs: options.hookTimeout, maxInFlight: options.hookMaxInFlight },
    metrics,
  );
  const rpc = options.rpcHook === undefined ? undefined : new RpcHook(hooks, options.rpcHook);
  const connectHook = options.connectHook === undefined ? undefined : new ConnectHook(hooks, options.connectHook);
  const refreshHook = options.refreshHook === undefined ? undefined : new RefreshHook(hooks, options.refreshHook, options.hookMaxInFlight, log);
  if (refreshHook) gateway.useRefresher(refreshHook);
  const channels = channelHooks(options, hooks, gateway);
  const frames = new FrameHandler(gateway, metrics, options.limits.maxSubscriptions, verifier, rpc, channels, new Quotas(options.limits, metrics));
  const startedAt = Date.now();
  const load = new LoadMeter(metrics);
  let draining = false;
  let port = options.port;

  const ready = () => broker.ready && !draining;
  const host = options.host === '0.0.0.0' || options.host === '::' ? '127.0.0.1' : options.host.includes(':') ? `[${options.host}]` : options.host;
  const publicUrl = (): string => options.advertiseUrl ?? `${scheme.ws}://${host}:${port}/ws`;
  const info = (): NodeInfo => ({
    id: options.nodeId,
    address: `${scheme.http}://${host}:${port}`,
    url: publicUrl(),
    routing: options.routing,
    connections: gateway.sessions.size,
    subscriptions: gateway.subscriptionCount,
    uptime: Math.round((Date.now() - startedAt) / 1000),
    ready: ready(),
    draining,
    broker: broker.kind,
    ...load.figures(),
  });
  const serve = async (request: ClusterRequest): Promise<unknown> => {
    switch (request.kind) {
      case 'disconnect': {
        const sessions = gateway.sessionsOf(request.user);
        for (const s of sessions) s.disconnect(request.code, request.reason, request.code >= 4100);
        return sessions.length;
      }
    }
  };
  const cluster = new Cluster(
    options.nodeId,
    broker,
    { heartbeatMs: options.heartbeat * 1000, deadAfterBeats: options.deadAfterBeats, secrets: options.clusterSecrets },
    info,
    serve,
    log,
    {
      onMembers: (others) => {
        const mixed = cluster.nodes().filter((n) => n.routing !== options.routing && n.routing !== undefined);
        for (const n of mixed) log.error({ node: n.id, routing: n.routing }, `node ${n.id} uses routing ${n.routing}, this one ${options.routing}: messages will be lost; use one routing per cluster`);
        gateway.membersChanged(others);
      },
      onGone: async (node) => {
        gateway.members.gone(node);
        await Promise.all([entries.drop(node), webhook?.releaseNode(node)]);
      },
      onSwept: () => gateway.swept(),
      onMember: (frame, from) => gateway.members.received(frame, from),
      onRejected: (reason) => metrics.controlRejected.inc({ reason }),
    },
  );
  const commands = new Commands(gateway, inProcessData(options.limits.maxBodyBytes));
  const ingests = createIngests(options.ingest, commands, metrics, log, options.nodeId);
  const api = new ServerApi({
    gateway,
    commands: new Commands(gateway, dataFromJson),
    metrics,
    apiKeys: options.apiKeys,
    insecure: options.insecure,
    maxBodyBytes: options.limits.maxBodyBytes,
    nodes: () => cluster.nodes(),
    adminCluster: () =>
      clusterView(options.nodeId, options.routing, cluster.nodes(), routing instanceof HashRingRouting ? routing.current : undefined),
    route: (user) => {
      const node = routing.owner(user) ?? options.nodeId;
      return { user, node, url: urlOf(node) ?? publicUrl() };
    },
    disconnectUser: async (user, code, reason) => {
      const outcomes = await cluster.requestAll({ kind: 'disconnect', user, code, reason }, CLUSTER_REQUEST_TIMEOUT_MS);
      return outcomes.reduce((n, o) => n + (typeof o.result === 'number' ? o.result : 0), 0);
    },
  });
  const door = new Door({ options, gateway, verifier, ...(connectHook ? { connectHook } : {}), metrics, log, draining: () => draining, ready });
  const sessionContext = { options, gateway, frames, ...(refreshHook ? { refreshHook } : {}), log };
  const peerOrigin = (origin: string): boolean => cluster.nodes().some((n) => nodeOrigins(n).includes(origin));
  const upgrader = new Upgrader({ ...sessionContext, peerOrigin }, door);
  const sse = new SseEndpoint(sessionContext, door);

  /** HTTP requests being answered: a drain lets them finish (a publish under way gets its answer). */
  let inflight = 0;
  const server = createNodeServer((req, res) => {
    inflight++;
    res.once('close', () => inflight--);
    route(req, res).catch((err: unknown) => {
      log.error({ err }, 'request failed');
      if (!res.headersSent) sendError(res, { code: ErrorCode.Internal, message: 'internal error' });
      else res.destroy();
    });
  }, tlsPair);
  hardenServer(server, options);
  server.on('upgrade', (req: IncomingMessage, socket, head: Buffer) => upgrader.handle(req, socket, head));
  const metricsServer = options.metricsPort === undefined ? undefined : createMetricsServer(metrics, options, log);

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = requestUrl(req.url);
    if (!url) return sendError(res, { code: ErrorCode.BadRequest, message: 'malformed request target' });
    // A proxy's rule for `/metrics` matches the raw path: `/./metrics` must not reach it here (http/path.ts).
    if (!isNormalPath(req.url, url)) return sendError(res, { code: ErrorCode.NotFound, message: 'no such endpoint: the path is not in normal form' });
    if (url.pathname.startsWith('/api/')) return api.handle(req, res, url);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return sendError(res, { code: ErrorCode.NotFound, message: `no such endpoint: ${req.method} ${url.pathname}` });
    }
    switch (url.pathname) {
      case '/sse':
        return sse.handle(req, res, url);
      case '/healthz':
        return sendJson(res, 200, { status: 'ok' });
      case '/readyz': {
        // An ingest that fails or falls behind is reported, not made a reason to stop serving clients.
        const ingest = ingests.status();
        const extra = ingest.length > 0 ? { ingest } : {};
        return ready()
          ? sendJson(res, 200, { status: 'ready', ...extra })
          : sendJson(res, 503, { status: draining ? 'draining' : 'broker unavailable', ...extra });
      }
      case '/metrics':
        if (metricsServer) break;
        return sendMetrics(res, metrics);
    }
    if (await servePage(req, res, url.pathname, options.serveSourcemaps)) return;
    return sendError(res, { code: ErrorCode.NotFound, message: `no such endpoint: ${url.pathname}` });
  }

  await gateway.start((payload) => cluster.receive(payload));
  // Logging starts before any entry is written or dropped, so that no transition goes unlogged.
  webhook?.start((channel) => gateway.namespaces.joinLeave(channel));
  // Entries an earlier life of this node left under its id go before it serves anyone.
  await entries.clearOwn().catch((err: unknown) => log.warn({ err }, 'could not drop the entries of an earlier life of this node'));
  try {
    await listen(server, options.port, options.host);
    if (metricsServer) await listen(metricsServer, options.metricsPort ?? 0, options.host);
  } catch (err) {
    server.close();
    await webhook?.stop();
    await gateway.close();
    throw err;
  }
  port = (server.address() as AddressInfo).port;
  cluster.start();
  // Rows are read once the node can publish; a source that is down is retried in the background.
  await ingests.start();
  // Once every live node has beaten, the entries of nodes nobody saw die go.
  const unknownSweep = setTimeout(() => void entries.dropUnknown((node) => cluster.isAlive(node)), detectionMs(options) + SETTLE_MARGIN_MS);
  unknownSweep.unref();
  load.start();
  log.info({ port, host: options.host, broker: broker.kind, tls: tls !== undefined }, 'switchboard node listening');
  if (tls !== undefined && options.advertiseUrl?.startsWith('ws:')) {
    log.warn({ advertiseUrl: options.advertiseUrl }, 'this node serves TLS but advertises a ws:// URL: clients sent there leave TLS');
  }

  let stopping: Promise<void> | undefined;
  const stop = async (graceMs: number): Promise<void> => {
    // While clients leave, and for a while even with none left, the HTTP
    // side stays up: /readyz says 503 and upgrades are refused, so load
    // balancers steer new clients elsewhere instead of finding the port closed.
    draining = true;
    const deadline = Date.now() + graceMs;
    const plan = drainPlan(gateway.sessions.size, graceMs);
    const lingerUntil = Date.now() + plan.lingerMs;
    clearTimeout(unknownSweep);
    load.stop();
    // No new rows: what a source still holds goes to the nodes that stay.
    await ingests.close();
    // With other nodes, stop delivering events before leaving: they free this
    // node's leases when they hear it leave, and a partition delivered from
    // here and from the node that takes it over would repeat its events.
    // Alone, deliver to the end (the offline events of the clients it closes too).
    if (cluster.nodes().length > 1) await webhook?.stop();
    await cluster.leave();
    const goAway = (s: Session): void => s.disconnect(CloseCode.Draining, 'node draining', true);
    await closeSpread([...gateway.sessions], plan.spreadMs, goAway);
    // A handshake under way when the drain began may have added a session since.
    for (const s of [...gateway.sessions]) goAway(s);
    while ((upgrader.sockets.size > 0 || Date.now() < lingerUntil) && Date.now() < deadline) await sleep(20);
    for (const ws of [...upgrader.sockets]) ws.terminate();
    server.close();
    server.closeIdleConnections();
    // Answer the requests under way (a publish may be waiting out its
    // deadline) within the grace period; then cut what is left.
    while (inflight > 0 && Date.now() < deadline) await sleep(20);
    server.closeAllConnections();
    metricsServer?.close();
    metricsServer?.closeAllConnections();
    // The events still waiting go to another node (or this node's next life) through the released leases.
    await webhook?.stop();
    hooks.close();
    await gateway.close();
    log.info('switchboard node stopped');
  };

  return {
    id: options.nodeId,
    get port() {
      return port;
    },
    options,
    log,
    url: (path = '') => `${scheme.http}://127.0.0.1:${port}${path}`,
    reloadTls: () => reloadTls(server, tls, log),
    ...(metricsServer ? { metricsPort: (metricsServer.address() as AddressInfo).port } : {}),
    drain: () => (stopping ??= stop(options.drainTimeout * 1000)),
    close: () => (stopping ??= stop(0)),
    publish: (channel, data, opts) => commands.publish(channel, data, opts),
    send: (user, data, opts) => commands.send(user, data, opts),
    batch: (list) => commands.batch(list),
    presence: (channel) => commands.presence(channel),
    user: (user) => commands.user(user),
    history: (channel, params) => commands.history(channel, params),
  };
}

/** Listens on `port` and `host`; rejects with the error of a failed bind (EADDRINUSE). */
function listen(server: NetServer, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
