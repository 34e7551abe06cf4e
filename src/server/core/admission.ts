/**
 * Node-wide admission of new sessions. When a node with thousands of
 * clients dies, they all come back through the others within seconds; what
 * is expensive in a handshake is its CPU (HTTP upgrade, token check, the
 * session) and its broker reads (subscribe, presence, recovery of the
 * personal channel). Two caps keep a survivor responsive for the clients it
 * already holds: a token bucket on handshakes started per second, and a cap
 * on handshakes under way at once (so a slow broker cannot pile up reads).
 * A refused client backs off and comes back later, or tries another node.
 */
import { TokenBucket } from './rate.js';

export interface AdmissionLimits {
  /** Handshakes admitted per second on average; 0 disables the rate cap. */
  perSecond: number;
  /** Handshakes under way at once (admitted, `welcome` not yet sent); 0 disables the cap. */
  inFlight: number;
}

/** Why a handshake was refused; also the `reason` label of the rejection metric. */
export type AdmissionReason = 'handshake_rate' | 'handshakes_in_flight';

export interface Admitted {
  ok: true;
  /** Call when the handshake is over (welcome sent, or it failed); later calls do nothing. */
  done: () => void;
}

export interface Refused {
  ok: false;
  reason: AdmissionReason;
}

/**
 * The bucket holds one second's worth of tokens: a quiet node admits up to
 * `perSecond` at once (a deploy, a test opening its clients), and a storm
 * gets `perSecond` per second after that. (A smaller burst, or an in-flight
 * cap tight enough to shape each turn of the event loop, refused several
 * times more handshakes in bench/reconnect-storm.ts, and every refused
 * client comes back later: recovery took longer without a calmer loop.)
 */
const BURST_SECONDS = 1;

export class Admission {
  private readonly bucket: TokenBucket | undefined;
  private active = 0;

  constructor(
    private readonly limits: AdmissionLimits,
    now: number,
  ) {
    if (limits.perSecond > 0) {
      this.bucket = new TokenBucket(limits.perSecond, Math.max(1, Math.ceil(limits.perSecond * BURST_SECONDS)), now);
    }
  }

  /** Handshakes admitted and not yet done. */
  get inFlight(): number {
    return this.active;
  }

  /**
   * Admit one handshake, or say why not. The in-flight cap is checked first
   * so that a refusal for it does not spend a token of the rate.
   */
  enter(now: number): Admitted | Refused {
    if (this.limits.inFlight > 0 && this.active >= this.limits.inFlight) return { ok: false, reason: 'handshakes_in_flight' };
    if (this.bucket && !this.bucket.take(now)) return { ok: false, reason: 'handshake_rate' };
    this.active++;
    let open = true;
    return {
      ok: true,
      done: () => {
        if (!open) return;
        open = false;
        this.active--;
      },
    };
  }
}
