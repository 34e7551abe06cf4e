/**
 * The chaos suite's verdicts on hand-made records: the accounting must see
 * a lost message, a message published twice (one seq, two offsets), a
 * delivery out of order, the SDK handing one offset twice, and must allow a
 * loss only where a reset told the app; acknowledgements without a position
 * (committed outbox rows) are matched by seq.
 */
import { describe, expect, it } from 'vitest';
import { account, type AckedMessage, type Delivery, type ResetNotice } from '../helpers/chaos/accounting.js';
import { RecoveryClock } from '../helpers/chaos/recovery.js';
import { sleep } from '../helpers/wait.js';

const E = 'epoch-1';
const acked = (seq: number, offset = seq, epoch = E, at = seq): AckedMessage => ({ user: 'u', seq, offset, epoch, at });
const got = (seq: number, offset = seq, client = 1, epoch = E): Delivery => ({ user: 'u', client, seq, offset, epoch, at: 100 + seq });

describe('chaos accounting', () => {
  it('is clean when every acknowledged message arrives once, in order', () => {
    const a = account([acked(1), acked(2), acked(3)], [got(1), got(2), got(3)], []);
    expect(a).toMatchObject({ published: 3, delivered: 3, lost: 0, lostTold: 0, duplicates: 0, sdkDuplicates: 0, outOfOrder: 0, problems: [] });
  });

  it('counts an acknowledged message that never arrived as lost', () => {
    const a = account([acked(1), acked(2), acked(3)], [got(1), got(3)], []);
    expect(a.lost).toBe(1);
    expect(a.problems[0]).toContain('seq 2');
  });

  it('counts one seq under two offsets as a duplicate (a retried publish applied twice), and its late copy as out of order', () => {
    const a = account([acked(1), acked(2, 3)], [got(1), got(2, 2), got(2, 3)], []);
    expect(a.duplicates).toBe(1);
    expect(a.outOfOrder).toBe(1);
    expect(a.lost).toBe(0);
  });

  it('de-duplicates by offset across a user\'s clients, but flags one client delivering an offset twice', () => {
    // A fresh client re-delivering what an earlier one had: at-least-once, fine after de-duplication.
    const across = account([acked(1), acked(2)], [got(1, 1, 1), got(2, 2, 1), got(2, 2, 2)], []);
    expect(across).toMatchObject({ delivered: 2, duplicates: 0, sdkDuplicates: 0 });
    const within = account([acked(1)], [got(1, 1, 1), got(1, 1, 1)], []);
    expect(within.sdkDuplicates).toBe(1);
  });

  it('allows a loss only where a reset covers it', () => {
    const reset: ResetNotice = { user: 'u', client: 1, offset: 2, epoch: 'epoch-2', at: 10 };
    // Seq 2 of the old epoch, acknowledged before the reset: told. Seq 4 at offset 1 of the new epoch, below the restart position: told.
    // Seq 5 at offset 3 of the new epoch, above it: lost untold.
    const a = account(
      [acked(1), acked(2), acked(4, 1, 'epoch-2', 8), acked(5, 3, 'epoch-2', 12)],
      [got(1)],
      [reset],
    );
    expect(a).toMatchObject({ lostTold: 2, lost: 1, resets: 1 });
    expect(a.problems[0]).toContain('seq 5');
  });

  it('matches acknowledgements without a position (committed outbox rows) by seq, and lets no reset excuse their loss', () => {
    const committed = (seq: number, at = seq): AckedMessage => ({ user: 'u', seq, at });
    const clean = account([committed(1), committed(2)], [got(1, 7), got(2, 8)], []);
    expect(clean).toMatchObject({ published: 2, delivered: 2, lost: 0, duplicates: 0, outOfOrder: 0, problems: [] });
    // Published twice by the ingest: one seq under two offsets.
    expect(account([committed(1)], [got(1, 7), got(1, 8)], []).duplicates).toBe(1);
    // Nothing says on which side of the reset's position it was stored: lost, untold.
    const reset: ResetNotice = { user: 'u', client: 1, offset: 9, epoch: 'epoch-2', at: 10 };
    const lost = account([committed(1), committed(2)], [got(1, 7)], [reset]);
    expect(lost).toMatchObject({ lost: 1, lostTold: 0 });
    expect(lost.problems[0]).toContain('seq 2 (no offset) lost');
  });
});

describe('chaos recovery clock', () => {
  it('measures from the fault until healthy for good, and says what was wrong last', async () => {
    let problem: string | undefined = 'clients down';
    const clock = new RecoveryClock(() => problem);
    clock.fault('test');
    // Pause, not a wait: the clock measures this time.
    await sleep(120);
    problem = undefined;
    // Pause, not a wait: the clock measures this time.
    await sleep(80);
    const [f] = clock.stop();
    expect(f?.recoveryMs).toBeGreaterThanOrEqual(100);
    expect(f?.recoveryMs).toBeLessThan(1000);
    expect(f?.lastProblem).toBe('clients down');
  });

  it('reports null when the system never became healthy again, and 0 when the fault did nothing visible', async () => {
    const never = new RecoveryClock(() => 'still down');
    never.fault('a');
    // Pause, not a wait: the clock measures this time.
    await sleep(60);
    expect(never.stop()[0]?.recoveryMs).toBeNull();
    const fine = new RecoveryClock(() => undefined);
    fine.fault('b');
    // Pause, not a wait: the clock measures this time.
    await sleep(60);
    expect(fine.stop()[0]?.recoveryMs).toBe(0);
  });
});
