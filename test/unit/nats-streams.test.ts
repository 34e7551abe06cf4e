/**
 * How NatsStreams.add meets the answers nats-server gives to nodes creating
 * the same stream at the same moment, over a scripted link (the race itself
 * is too narrow to hit on demand: it showed once in about 80 runs of the
 * conformance suite against a real server).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { NatsLink } from '../../src/brokers/nats/link.js';
import { NatsNames } from '../../src/brokers/nats/names.js';
import { NatsStreams } from '../../src/brokers/nats/streams.js';

const apiError = (code: number, message: string): Error => Object.assign(new Error(message), { code });
const overlap = () => apiError(10065, 'subjects overlap with an existing stream');
const notFound = () => apiError(10059, 'stream not found');

/** A link whose `streams.add` and `streams.info` answer from the scripts given, in turn. */
function scripted(adds: Array<() => unknown>, infos: Array<() => unknown>) {
  const calls = { add: 0, info: 0 };
  const next = (script: Array<() => unknown>, i: number) => script[Math.min(i, script.length - 1)]!;
  const jsm = {
    streams: {
      add: async () => next(adds, calls.add++)(),
      info: async () => next(infos, calls.info++)(),
    },
  };
  const link = { admin: jsm, read: (_what: string, request: (m: typeof jsm) => Promise<unknown>) => request(jsm) };
  return { streams: new NatsStreams(() => link as unknown as NatsLink, new NatsNames('t'), 1), calls };
}

const config = { name: 't_h_10_60000', subjects: ['t.h.10.60000.>'] };
const fail = (err: () => Error) => () => {
  throw err();
};

afterEach(() => {
  vi.useRealTimers();
});

describe('NatsStreams.add', () => {
  it('takes "subjects overlap" for done when the stream of that name is then found (another node made it)', async () => {
    const { streams, calls } = scripted([fail(overlap)], [fail(notFound), () => ({ config })]);
    await streams.add(config);
    expect(calls).toEqual({ add: 1, info: 2 });
  });

  it('tries again while the other node\'s stream is not visible yet', async () => {
    const { streams, calls } = scripted([fail(overlap), fail(overlap), () => ({ config })], [fail(notFound)]);
    await streams.add(config);
    expect(calls.add).toBe(3);
  });

  it('rejects with the overlap once it outlasts the wait: the subjects are another stream\'s', async () => {
    vi.useFakeTimers();
    const { streams, calls } = scripted([fail(overlap)], [fail(notFound)]);
    const done = streams.add(config);
    const outcome = expect(done).rejects.toThrow(/subjects overlap/);
    await vi.advanceTimersByTimeAsync(6_000);
    await outcome;
    expect(calls.add).toBeGreaterThan(10);
  });

  it('passes any other error through at once', async () => {
    const { streams, calls } = scripted([fail(() => apiError(10052, 'insufficient resources'))], [fail(notFound)]);
    await expect(streams.add(config)).rejects.toThrow(/insufficient resources/);
    expect(calls.add).toBe(1);
  });
});
