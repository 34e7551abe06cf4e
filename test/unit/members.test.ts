/**
 * `Members`, the join and leave frames of one node: written to the local
 * subscribers that are ready (not the session itself, not one still
 * recovering), announced for local changes only, and the roster of a held
 * channel that lets a node write the leaves of a node that died, once,
 * whether it learned the members from frames or from its first presence read.
 */
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { PresenceEntry } from '../../src/brokers/broker.js';
import type { MemberFrame, ServerFrame } from '../../src/protocol/index.js';
import type { Interest } from '../../src/server/core/interest.js';
import { Members } from '../../src/server/core/members.js';
import type { Session } from '../../src/server/core/session.js';

interface FakeSession {
  id: string;
  channels: Map<string, { pending: unknown[] | null }>;
  got: ServerFrame[];
  send(frame: ServerFrame): boolean;
}

function session(id: string, channel: string, ready = true): FakeSession {
  const s: FakeSession = {
    id,
    channels: new Map([[channel, { pending: ready ? null : [] }]]),
    got: [],
    send: (frame) => s.got.push(frame) > 0,
  };
  return s;
}

function setup(read: (channel: string) => Promise<PresenceEntry[]> = async () => []) {
  const local = new Map<string, Set<FakeSession>>();
  const interest = { subscribers: (channel: string) => local.get(channel) } as unknown as Interest;
  const announced: MemberFrame[] = [];
  const members = new Members(interest, async (f) => void announced.push(f), read, pino({ level: 'silent' }));
  const subscribe = (s: FakeSession, channel: string): void => {
    if (!local.has(channel)) local.set(channel, new Set());
    local.get(channel)!.add(s);
  };
  return { members, announced, subscribe };
}

const text = (s: FakeSession): string[] => s.got.map((f) => (f.type === 'join' || f.type === 'leave' ? `${f.type} ${f.user} ${f.session}` : f.type));
const item = (user: string, session: string, node: string) => ({ channel: 'room:1', entry: { user, session, node } });

describe('Members', () => {
  it('writes to ready local subscribers but the session itself, and announces only local changes', async () => {
    const { members, announced, subscribe } = setup();
    const ready = session('w1', 'room:1');
    const recovering = session('w2', 'room:1', false);
    const self = session('s1', 'room:1');
    for (const s of [ready, recovering, self]) subscribe(s, 'room:1');
    members.changed('join', item('alice', 's1', 'n1'));
    members.received({ type: 'leave', channel: 'room:1', user: 'bob', session: 'b1' }, 'n2');
    members.received({ type: 'leave', channel: 'room:1', user: 'bob' }, 'n2');
    expect(text(ready)).toEqual(['join alice s1', 'leave bob b1']);
    expect(text(recovering)).toEqual([]);
    expect(text(self)).toEqual(['leave bob b1']);
    expect(announced).toEqual([{ type: 'join', channel: 'room:1', user: 'alice', session: 's1' }]);
  });

  it("writes the leaves of a dead node's sessions once, from the frames and from the first presence read", async () => {
    let answer: (entries: PresenceEntry[]) => void = () => undefined;
    const { members, subscribe } = setup(() => new Promise((resolve) => (answer = resolve)));
    const w = session('w1', 'room:1');
    subscribe(w, 'room:1');
    members.hold('room:1');
    // While the read is under way: carol leaves (the read may still list her), dave joins.
    members.received({ type: 'leave', channel: 'room:1', user: 'carol', session: 'c1' }, 'n2');
    members.received({ type: 'join', channel: 'room:1', user: 'dave', session: 'd1' }, 'n2');
    answer([
      { user: 'bob', session: 'b1', node: 'n2' },
      { user: 'carol', session: 'c1', node: 'n2' },
      { user: 'erin', session: 'e1', node: 'n3' },
    ]);
    await new Promise((r) => setTimeout(r, 0));
    w.got.length = 0;
    members.gone('n2');
    expect(text(w).sort()).toEqual(['leave bob b1', 'leave dave d1']);
    // Told already: the departed node's own leave frame, arriving after, is not written again.
    members.received({ type: 'leave', channel: 'room:1', user: 'bob', session: 'b1' }, 'n2');
    members.gone('n2');
    expect(text(w).sort()).toEqual(['leave bob b1', 'leave dave d1']);
    // A released channel keeps no roster.
    members.release('room:1');
    members.gone('n3');
    expect(text(w)).toHaveLength(2);
  });

  it('writes every leave while its roster is incomplete (the presence read failed)', async () => {
    const { members, subscribe } = setup(() => Promise.reject(new Error('down')));
    const w = session('w1', 'room:1');
    subscribe(w, 'room:1');
    members.hold('room:1');
    await new Promise((r) => setTimeout(r, 0));
    members.received({ type: 'leave', channel: 'room:1', user: 'bob', session: 'b1' }, 'n2');
    expect(text(w)).toEqual(['leave bob b1']);
  });
});
