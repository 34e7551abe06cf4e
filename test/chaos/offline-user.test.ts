/**
 * Chaos 6: users who are away while the cluster goes through a fault, then
 * come back with a FRESH client (no saved offset, as after a reinstall or
 * on a new page load), and get what they missed in the welcome.
 *
 * The server keeps each user's acknowledged offset from `ack` frames, per
 * user and `?device=`; a connection without `since` replays from it, or
 * from the start of the retained history when that user/device never
 * acknowledged anything.
 *
 * - alice is offline for the whole run: her fresh client gets all of it.
 * - bob reads on his phone for a while (the SDK acks what it delivers), goes
 *   away, and comes back with a fresh client on the same device: he gets
 *   exactly what came after what the phone acknowledged. A fresh client on
 *   his tablet, which never acknowledged anything, gets everything.
 *
 * Meanwhile the online users' traffic goes on and a node is killed.
 */
import { afterAll, describe, expect, it, vi } from 'vitest';
import type { ChaosClient } from '../helpers/chaos/clients.js';
import { Publisher } from '../helpers/chaos/publisher.js';
import { ChaosRun } from '../helpers/chaos/scenario.js';
import { expectNothingLost } from '../helpers/chaos/verdict.js';
import { sleep } from '../helpers/wait.js';

let run: ChaosRun | undefined;
let phase: Publisher | undefined;
afterAll(async () => {
  await phase?.abort();
  await run?.close();
}, 30_000);

const ALICE = 'offline-alice';
const BOB = 'offline-bob';
/** The SDK sends at most one ack per channel per this many ms (its default is 1000). */
const ACK_INTERVAL_MS = 200;

/** Seqs `client` delivered, in delivery order. */
function seqsOf(r: ChaosRun, client: ChaosClient): number[] {
  return r.ledger.deliveries.filter((d) => d.client === client.id).map((d) => d.seq);
}

/** Seqs acknowledged for `user`, ascending. */
function ackedSeqs(r: ChaosRun, user: string, after = 0): number[] {
  return r.ledger.acked.filter((a) => a.user === user && a.seq > after).map((a) => a.seq).sort((a, b) => a - b);
}

describe('chaos: offline users come back with a fresh client', () => {
  it('get everything they did not acknowledge, from the welcome', async () => {
    run = await ChaosRun.start({ name: 'offline', users: 12, offline: [ALICE] });
    const r = run;
    const bobPublisher = () => new Publisher(r.ledger, { url: r.cluster.apiUrl, users: [BOB], intervalMs: 100, runId: 'offline-bob' });

    // Bob reads on his phone and closes the app as soon as he has everything:
    // what the phone got must count as acknowledged all the same.
    const phone = r.addClient(BOB, { device: 'phone', ackInterval: ACK_INTERVAL_MS });
    await vi.waitUntil(() => phone.connected, { timeout: 10_000, interval: 25 });
    phase = bobPublisher().start();
    // Pause, not a wait: traffic flows for a while while the phone reads.
    await sleep(2000);
    await phase.stop();
    await vi.waitUntil(() => r.ledger.missing(Infinity, [BOB]) === 0, { timeout: 10_000, interval: 25 });
    phone.close();
    const readOnPhone = Math.max(...seqsOf(r, phone));
    expect(readOnPhone).toBeGreaterThan(5);

    // Away: more for both, and a node dies.
    phase = bobPublisher().start();
    // Pause, not a wait: traffic flows for a while while the users are away.
    await sleep(1500);
    const victim = r.cluster.nodes[0]!;
    r.fault('SIGKILL');
    await victim.kill();
    // Pause, not a wait: traffic flows for a while after the kill.
    await sleep(3000);
    await phase.stop();
    await r.stopPublishing();

    // Back, each with a fresh client.
    // (Not faults: the recovery clock does not wait for them.)
    const alice = r.addClient(ALICE, {}, { watched: false });
    const bobPhone = r.addClient(BOB, { device: 'phone' }, { watched: false });
    const bobTablet = r.addClient(BOB, { device: 'tablet' }, { watched: false });
    const back = [alice, bobPhone, bobTablet];
    // Wait for the returning clients to connect.
    await vi.waitUntil(() => back.every((c) => c.connected), { timeout: 10_000, interval: 25 });
    const wantAlice = ackedSeqs(r, ALICE);
    const wantPhone = ackedSeqs(r, BOB, readOnPhone);
    const wantTablet = ackedSeqs(r, BOB);
    // Wait for the returning clients to get what they missed.
    await vi.waitUntil(
      () => seqsOf(r, alice).length >= wantAlice.length && seqsOf(r, bobPhone).length >= wantPhone.length && seqsOf(r, bobTablet).length >= wantTablet.length,
      { timeout: 5000, interval: 25 },
    ).catch(() => undefined); // the assertions below say what is missing
    const fig = await r.finish({ alice: seqsOf(r, alice).length, bobPhone: seqsOf(r, bobPhone).length, bobTablet: seqsOf(r, bobTablet).length });

    // A fresh client asks for no recovery: what it gets is the server's own replay.
    for (const c of back) expect(c.connects[0]).toMatchObject({ wasRecovering: false });
    expect(wantAlice.length).toBeGreaterThan(30);
    expect(seqsOf(r, alice)).toEqual(wantAlice);
    expect(seqsOf(r, bobPhone)).toEqual(wantPhone);
    expect(seqsOf(r, bobTablet)).toEqual(wantTablet);
    expectNothingLost(r, fig);
  }, 60_000);
});
