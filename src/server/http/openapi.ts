/**
 * The OpenAPI 3.1 description of the server API, served at
 * `GET /api/openapi.json`. It mirrors the request and answer types of
 * `src/protocol/api.ts` as JSON Schema (draft 2020-12); the schemas of
 * answers refuse unknown properties, so a field added to an answer without
 * its description fails `test/integration/openapi.test.ts`, which holds this
 * description against a running node's real answers, and the router's
 * routes against its paths.
 */
import { ErrorCode, MAX_BATCH_COMMANDS, MAX_BROADCAST_CHANNELS, MAX_HISTORY_LIMIT, REPLAYED_HEADER } from '../../protocol/index.js';
import { ROUTINGS } from '../options.js';

/** A JSON Schema as plain data. */
export type JsonSchema = { readonly [keyword: string]: unknown };

/** A reference to a component of this description (`#/components/...`). */
export interface Ref {
  readonly $ref: string;
}

export interface Parameter {
  readonly name: string;
  readonly in: 'path' | 'query' | 'header';
  readonly required?: boolean;
  readonly description: string;
  readonly schema: JsonSchema;
}

/** Media types by name (`application/json`), each with the schema of its body. */
export type Content = Readonly<Record<string, { readonly schema: JsonSchema }>>;

export interface Response {
  readonly description: string;
  readonly headers?: Readonly<Record<string, { readonly description: string; readonly required?: boolean; readonly schema: JsonSchema }>>;
  readonly content?: Content;
}

export interface Operation {
  readonly operationId: string;
  readonly summary: string;
  readonly description?: string;
  /** `[]`: no API key needed. Absent: the document's `security` (the API key). */
  readonly security?: ReadonlyArray<Readonly<Record<string, readonly string[]>>>;
  readonly parameters?: readonly Parameter[];
  readonly requestBody?: { readonly required: boolean; readonly content: Content };
  /** By HTTP status, or `default` for any status not listed. */
  readonly responses: Readonly<Record<string, Response | Ref>>;
}

export type Method = 'get' | 'post';

export interface OpenApiDocument {
  readonly openapi: '3.1.0';
  readonly info: { readonly title: string; readonly version: string; readonly description: string };
  readonly security: ReadonlyArray<Readonly<Record<string, readonly string[]>>>;
  readonly paths: Readonly<Record<string, Readonly<Partial<Record<Method, Operation>>>>>;
  readonly components: {
    readonly securitySchemes: Readonly<Record<string, JsonSchema>>;
    readonly schemas: Readonly<Record<string, JsonSchema>>;
    readonly responses: Readonly<Record<string, Response>>;
  };
}

const ref = (name: string): JsonSchema => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: JsonSchema): Content => ({ 'application/json': { schema } });
/** An answer's object: exactly these properties, `required` among them. */
const answer = (properties: Record<string, JsonSchema>, required: readonly string[] = Object.keys(properties)): JsonSchema => ({
  type: 'object',
  required,
  additionalProperties: false,
  properties,
});
const integer = (minimum: number, description?: string): JsonSchema =>
  description === undefined ? { type: 'integer', minimum } : { type: 'integer', minimum, description };
const text = (description: string): JsonSchema => ({ type: 'string', description });

/** The refusal body; with `code`, only that code (the one its HTTP status stands for). */
function errorSchema(code?: ErrorCode): JsonSchema {
  const codes = code === undefined ? { enum: Object.values(ErrorCode) } : { const: code };
  return answer({ error: answer({ code: { type: 'string', ...codes }, message: text('What went wrong, for people.') }) });
}

/** The errors an operation may answer, by HTTP status: each a response of `components.responses`. */
const ERRORS = {
  400: ['BadRequest', ErrorCode.BadRequest, 'A malformed request: body or parameter missing, of the wrong type, or out of range.'],
  401: ['Unauthorized', ErrorCode.Unauthorized, 'No API key, a wrong one, or no `--api-key` configured on a node that is not `--insecure`.'],
  404: ['NotFound', ErrorCode.NotFound, 'The namespace keeps no history or no presence.'],
  413: ['TooLarge', ErrorCode.TooLarge, 'The body is over `--max-body-bytes` (default 1 MiB).'],
  415: [
    'UnsupportedMediaType',
    ErrorCode.BadRequest,
    'The body was not sent as `Content-Type: application/json` (parameters such as `; charset=utf-8` allowed), the only type the API takes; refused before it is read.',
  ],
  503: [
    'Unavailable',
    ErrorCode.Unavailable,
    'A publish: the broker did not take the message, unreachable until `--publish-deadline`, or an attempt failed and the message had no idempotency key to retry it under. ' +
      'A read (user, presence, history): the broker could not be read. ' +
      'A disconnect: too many cluster requests in flight on this node.',
  ],
} as const;
type ErrorStatus = keyof typeof ERRORS;
/** What every operation with a body may answer for the body alone: not a JSON object (400), too large (413), not sent as JSON (415). */
const BODY_ERRORS: readonly ErrorStatus[] = [400, 413, 415];

/** Fields every node states about itself (`NodeInfo`); the load figures are optional. */
function nodeProperties(): Record<string, JsonSchema> {
  const figure = (description: string): JsonSchema => ({ type: 'number', minimum: 0, description });
  return {
    id: { type: 'string' },
    address: text('Public address of the node’s HTTP and WebSocket port.'),
    url: text('Public WebSocket URL of the node (`--advertise-url`).'),
    routing: { type: 'string', enum: [...ROUTINGS] },
    connections: integer(0),
    subscriptions: integer(0),
    uptime: integer(0, 'Seconds since the node started.'),
    ready: { type: 'boolean' },
    draining: { type: 'boolean' },
    broker: text('The broker kind (`memory`, `redis`, `redis-cluster`, `nats`, `rabbitmq`, `ipc`); its health is `ready`.'),
    messagesInPerSec: figure('Client frames received per second (last second).'),
    messagesOutPerSec: figure('Message frames written to client sockets per second (last second).'),
    latencyP50Ms: figure('Delivery latency median over the last seconds, ms; absent with no deliveries.'),
    latencyP99Ms: figure('Delivery latency 99th percentile over the last seconds, ms; absent with no deliveries.'),
  };
}
const NODE_REQUIRED = ['id', 'address', 'url', 'routing', 'connections', 'subscriptions', 'uptime', 'ready', 'draining'];

const SCHEMAS: Record<string, JsonSchema> = {
  ChannelName: {
    type: 'string',
    pattern: '^[A-Za-z0-9_\\-.:@=,]{1,255}$',
    description: '1–255 characters of `A-Za-z0-9_-.:@=,`; the part before the first `:` is the namespace.',
  },
  UserId: { type: 'string', pattern: '^[A-Za-z0-9_\\-.:@=,]{1,250}$', description: '1–250 characters of `A-Za-z0-9_-.:@=,`.' },
  IdempotencyKey: {
    type: 'string',
    pattern: '^[!-~]{1,128}$',
    description: '1–128 printable ASCII characters without spaces. Publishes once per key and channel within `--idempotency-window`.',
  },
  Data: { description: 'Any JSON value, nested at most 32 levels.' },
  Publication: answer(
    {
      channel: ref('ChannelName'),
      data: ref('Data'),
      offset: integer(1, 'Absent on channels without history.'),
      epoch: text('Absent on channels without history.'),
      from: { ...ref('UserId'), description: "The publisher's user id; absent for publications from the server API." },
    },
    ['channel', 'data'],
  ),
  PublishRequest: {
    type: 'object',
    required: ['channel', 'data'],
    properties: { channel: ref('ChannelName'), data: ref('Data'), idempotencyKey: ref('IdempotencyKey') },
  },
  SendRequest: {
    type: 'object',
    required: ['user', 'data'],
    properties: { user: ref('UserId'), data: ref('Data'), idempotencyKey: ref('IdempotencyKey') },
  },
  BroadcastRequest: {
    type: 'object',
    required: ['channels', 'data'],
    properties: {
      channels: { type: 'array', minItems: 1, maxItems: MAX_BROADCAST_CHANNELS, items: ref('ChannelName') },
      data: ref('Data'),
      idempotencyKey: ref('IdempotencyKey'),
    },
  },
  BatchRequest: {
    type: 'object',
    required: ['commands'],
    properties: {
      commands: {
        type: 'array',
        minItems: 1,
        maxItems: MAX_BATCH_COMMANDS,
        description: 'Commands on one channel (or to one user) are published in the order given, the others concurrently.',
        items: {
          oneOf: [
            { type: 'object', required: ['publish'], additionalProperties: false, properties: { publish: ref('PublishRequest') } },
            { type: 'object', required: ['send'], additionalProperties: false, properties: { send: ref('SendRequest') } },
          ],
        },
      },
    },
  },
  DisconnectRequest: {
    type: 'object',
    required: ['user'],
    properties: {
      user: ref('UserId'),
      code: { type: 'integer', minimum: 4000, maximum: 4199, description: 'The close code; default 4000 (do not reconnect).' },
      reason: { type: 'string', maxLength: 120, description: 'At most 120 bytes of UTF-8; default "disconnected by the server".' },
    },
  },
  PublishAnswer: answer(
    { offset: integer(1, "The message's offset; absent without history."), epoch: text('Absent without history.') },
    [],
  ),
  BroadcastAnswer: answer({
    results: { type: 'array', description: 'One per channel, in the order given.', items: { oneOf: [ref('PublishAnswer'), ref('Error')] } },
  }),
  BatchAnswer: answer({
    results: {
      type: 'array',
      description: 'One per command, in the order given: its position (`replayed` when its idempotency key was seen before), or why it failed (a malformed command too).',
      items: {
        oneOf: [
          answer({ offset: integer(1, "The message's offset; absent without history."), epoch: text('Absent without history.'), replayed: { type: 'boolean', enum: [true] } }, []),
          ref('Error'),
        ],
      },
    },
  }),
  UserAnswer: answer({
    online: { type: 'boolean' },
    sessions: { type: 'array', items: answer({ session: { type: 'string' }, node: { type: 'string' } }) },
  }),
  PresenceAnswer: answer({
    members: { type: 'array', items: answer({ user: ref('UserId'), session: { type: 'string' }, node: { type: 'string' } }) },
  }),
  HistoryAnswer: answer({
    offset: integer(0, "The channel's newest offset; 0 when nothing was ever published."),
    epoch: { type: 'string' },
    messages: { type: 'array', items: ref('Publication') },
  }),
  DisconnectAnswer: answer({ sessions: integer(0, 'How many sessions were closed, on every node.') }),
  RouteAnswer: answer({ user: ref('UserId'), node: { type: 'string' }, url: text("The node's public WebSocket URL.") }),
  NodeInfo: answer(nodeProperties(), NODE_REQUIRED),
  NodesAnswer: answer({ nodes: { type: 'array', items: ref('NodeInfo') } }),
  AdminClusterAnswer: answer({
    node: text('The node that answered.'),
    at: integer(0, 'Milliseconds since the Unix epoch on the answering node.'),
    routing: { type: 'string', enum: [...ROUTINGS] },
    nodes: {
      type: 'array',
      items: answer(
        {
          ...nodeProperties(),
          ringShare: { type: 'number', minimum: 0, maximum: 1, description: 'Under hash-ring routing: the share of user ids the node owns.' },
        },
        NODE_REQUIRED,
      ),
    },
    totals: answer(
      Object.fromEntries(
        ['nodes', 'ready', 'connections', 'subscriptions', 'messagesInPerSec', 'messagesOutPerSec'].map((k) => [
          k,
          { type: 'number', minimum: 0 },
        ]),
      ),
    ),
  }),
  Error: errorSchema(),
  Health: answer({ status: { type: 'string', const: 'ok' } }),
  Readiness: answer(
    {
      status: { type: 'string', enum: ['ready', 'draining', 'broker unavailable'] },
      ingest: {
        type: 'array',
        description: 'One per `--ingest` source (absent without any). A failing or stuck ingest does not make the node unready: it still serves its clients.',
        items: answer(
          {
            source: text('The source, without its password: `postgres://host:port/db/table` or `kafka://host:port,…/topic`.'),
            state: { type: 'string', enum: ['running', 'stuck', 'failing'], description: '`stuck`: its oldest record waits longer than its `stuck` bound; `failing`: its last round failed (source or broker unreachable).' },
            oldestSeconds: { type: ['number', 'null'], description: 'Age of the oldest record not yet published, when last looked (null: none, or not looked yet).' },
            error: text('Why the last round failed.'),
          },
          ['source', 'state', 'oldestSeconds'],
        ),
      },
    },
    ['status'],
  ),
  OpenApi: { type: 'object', required: ['openapi', 'info', 'paths', 'components'], description: 'This description.' },
};

/** Headers and answers shared by the publishing operations. */
const PUBLISHED: Response = {
  description: 'Stored (with history) or accepted for delivery. A repeated idempotency key publishes nothing and answers the first position.',
  headers: {
    [REPLAYED_HEADER]: {
      description: '`true` when the answer is that of an earlier publish with the same idempotency key.',
      schema: { type: 'string', const: 'true' },
    },
  },
  content: json(ref('PublishAnswer')),
};
const OPEN = [] as const;

interface OperationSpec {
  description?: string;
  open?: boolean;
  parameters?: Parameter[];
  body?: string;
  /** The answers that are not refusals, by status (200, and 503 for `/readyz`). */
  answers: Record<number, Response>;
  /** Refusals besides `BODY_ERRORS`, which an operation with a `body` lists anyway. */
  errors?: ErrorStatus[];
}

/** An operation: its answers, its listed errors, and any other status as `default` (`internal`, 500). */
function operation(operationId: string, summary: string, spec: OperationSpec): Operation {
  const responses: Record<string, Response | Ref> = { ...spec.answers };
  const errors = [...(spec.body ? BODY_ERRORS : []), ...(spec.errors ?? [])];
  for (const status of errors) responses[status] = { $ref: `#/components/responses/${ERRORS[status][0]}` };
  responses.default = { $ref: '#/components/responses/Error' };
  return {
    operationId,
    summary,
    ...(spec.description === undefined ? {} : { description: spec.description }),
    ...(spec.open ? { security: OPEN } : {}),
    ...(spec.parameters ? { parameters: spec.parameters } : {}),
    ...(spec.body ? { requestBody: { required: true, content: json(ref(spec.body)) } } : {}),
    responses,
  };
}

/** A 200 answer whose body is the schema `schema`. */
const ok = (description: string, schema: string): Record<number, Response> => ({ 200: { description, content: json(ref(schema)) } });
/** A path parameter (`{name}` in the template), percent-encoded in the request. */
const inPath = (name: string, schema: string): Parameter => ({
  name,
  in: 'path',
  required: true,
  description: `The ${name}, percent-encoded.`,
  schema: ref(schema),
});
const inQuery = (name: string, description: string): Parameter => ({ name, in: 'query', description, schema: { type: 'integer', minimum: 0 } });
const KEY_HEADER: Parameter = {
  name: 'Idempotency-Key',
  in: 'header',
  description: 'The idempotency key, instead of `idempotencyKey` in the body (both: they must agree).',
  schema: ref('IdempotencyKey'),
};

/** `/api/publish` and `/api/send`: one publish, under an optional idempotency key, answered with its position. */
const keyedPublish = (id: string, summary: string, body: string): Operation =>
  operation(id, summary, { parameters: [KEY_HEADER], body, answers: { 200: PUBLISHED }, errors: [401, 503] });

export const OPENAPI: OpenApiDocument = {
  openapi: '3.1.0',
  info: {
    title: 'Switchboard server API',
    version: '1',
    description:
      'The HTTP API a business service uses to reach WebSocket clients through any node of a Switchboard cluster: JSON bodies ' +
      '(`Content-Type: application/json` only), `Authorization: Bearer <api-key>`, refusals as `{"error": {"code", "message"}}` ' +
      'with the status of their code. The key is checked before the path: without one, an unknown path under `/api/` is 401, ' +
      'with one 404. A known path with another method is 405 `bad_request` with an `Allow` header; a body of another type, ' +
      '415 `bad_request`. Endpoints without a key ' +
      '(`/api/route`, `/api/openapi.json`) allow any origin (CORS). Reference: docs/api.md.',
  },
  security: [{ apiKey: [] }],
  paths: {
    '/api/publish': {
      post: keyedPublish('publish', 'Publish to a channel', 'PublishRequest'),
    },
    '/api/send': {
      post: keyedPublish('send', 'Send to every connection of a user (its personal channel `user:<user>`)', 'SendRequest'),
    },
    '/api/broadcast': {
      post: operation('broadcast', `Publish one message to 1–${MAX_BROADCAST_CHANNELS} channels`, {
        description: 'Each channel is its own publish (under the same idempotency key); a channel that fails has `{error}` in its place.',
        parameters: [KEY_HEADER],
        body: 'BroadcastRequest',
        answers: ok('One result per channel, in the order given.', 'BroadcastAnswer'),
        errors: [401],
      }),
    },
    '/api/batch': {
      post: operation('batch', `Publish and send 1–${MAX_BATCH_COMMANDS} messages in one request`, {
        description:
          'Each command carries its own idempotency key (the `Idempotency-Key` header is refused here). Commands on one channel keep ' +
          'their order; a command that fails or is malformed has `{error}` in its place and the others are published regardless.',
        body: 'BatchRequest',
        answers: ok('One result per command, in the order given.', 'BatchAnswer'),
        errors: [401],
      }),
    },
    '/api/users/{user}': {
      get: operation('user', "A user's sessions on every node", {
        parameters: [inPath('user', 'UserId')],
        answers: ok('Whether and where.', 'UserAnswer'),
        errors: [400, 401, 503],
      }),
    },
    '/api/presence/{channel}': {
      get: operation('presence', "A channel's subscribers on every node", {
        parameters: [inPath('channel', 'ChannelName')],
        answers: ok('One member per subscribed session.', 'PresenceAnswer'),
        errors: [400, 401, 404, 503],
      }),
    },
    '/api/history/{channel}': {
      get: operation('history', "A page of a channel's history", {
        parameters: [
          inPath('channel', 'ChannelName'),
          inQuery('since', 'Messages after this offset. Default: the newest `limit`.'),
          inQuery('limit', `At most this many messages; default the namespace's history size, capped at ${MAX_HISTORY_LIMIT}.`),
        ],
        answers: ok('The channel position and the messages, oldest first.', 'HistoryAnswer'),
        errors: [400, 401, 404, 503],
      }),
    },
    '/api/disconnect': {
      post: operation('disconnect', 'Close every session of a user, on every node', {
        body: 'DisconnectRequest',
        answers: ok('How many sessions were closed.', 'DisconnectAnswer'),
        errors: [401, 503],
      }),
    },
    '/api/nodes': {
      get: operation('nodes', 'The live nodes of the cluster', {
        answers: ok('Every live node, as its last heartbeat describes it.', 'NodesAnswer'),
        errors: [401],
      }),
    },
    '/api/admin/cluster': {
      get: operation('adminCluster', 'The cluster view behind the `/admin` dashboard', {
        answers: ok('The live nodes with their load, and totals.', 'AdminClusterAnswer'),
        errors: [401],
      }),
    },
    '/api/route': {
      get: operation('route', 'The node a user should connect to', {
        description: 'Its owner under hash-ring routing; under the other routings, the answering node. No API key; any origin.',
        open: true,
        parameters: [{ name: 'user', in: 'query', required: true, description: 'The user id.', schema: ref('UserId') }],
        answers: ok('The node and its WebSocket URL.', 'RouteAnswer'),
        errors: [400],
      }),
    },
    '/api/openapi.json': { get: operation('openapi', 'This description', { open: true, answers: ok('OpenAPI 3.1.', 'OpenApi') }) },
    '/healthz': { get: operation('healthz', 'Liveness', { open: true, answers: ok('The process serves HTTP.', 'Health') }) },
    '/readyz': {
      get: operation('readyz', 'Readiness', {
        open: true,
        answers: {
          200: { description: 'Ready: the broker is reachable and the node is not draining.', content: json(ref('Readiness')) },
          503: { description: 'Not ready: `draining` or `broker unavailable`.', content: json(ref('Readiness')) },
        },
      }),
    },
    '/metrics': {
      get: operation('metrics', 'Prometheus metrics, names prefixed `switchboard_` (docs/metrics.md)', {
        open: true,
        answers: { 200: { description: 'Prometheus text format 0.0.4.', content: { 'text/plain': { schema: { type: 'string' } } } } },
      }),
    },
  },
  components: {
    securitySchemes: {
      apiKey: {
        type: 'http',
        scheme: 'bearer',
        description: 'An API key of the node (`--api-key`, may repeat). An `--insecure` node with no key configured needs none.',
      },
    },
    schemas: SCHEMAS,
    responses: {
      ...Object.fromEntries(
        Object.values(ERRORS).map(([name, code, description]) => [name, { description, content: json(errorSchema(code)) }]),
      ),
      Error: { description: 'Any other refusal (`internal`, 500, for a fault of the node).', content: json(ref('Error')) },
    },
  },
};
