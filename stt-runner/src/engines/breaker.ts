/**
 * A circuit breaker for the primary engine (Google), pure: the caller passes the time.
 *
 * closed: every new call goes to the primary. `failures` failures within `windowMs` open it.
 * open: new calls go straight to the fallback for `cooldownMs`.
 * half-open: after the cool-down, the next new call is a probe on the primary (other new calls
 *   keep going to the fallback meanwhile); the probe's first result closes the breaker, its
 *   failure opens it again for another cool-down. A probe that ends with neither frees the slot.
 */

export type BreakerState = "closed" | "open" | "half-open";

export interface BreakerOptions {
  /** Failures within the window that open the breaker (>= 1). */
  readonly failures: number;
  readonly windowMs: number;
  readonly cooldownMs: number;
}

export interface BreakerCounters {
  /** Times the breaker opened (from closed or from a failed probe). */
  opened: number;
  /** Times a probe succeeded and the breaker closed. */
  closed: number;
  /** Calls sent to the primary as half-open probes. */
  probes: number;
  /** New calls sent straight to the fallback because the breaker was not closed. */
  callsDiverted: number;
  /** Failures reported. */
  failures: number;
}

/** What `admit` decided for a new call. */
export type Admission = { readonly to: "primary"; readonly probe: boolean } | { readonly to: "fallback" };

export class CircuitBreaker {
  private recent: number[] = [];
  private openedAtMs = 0;
  private probing = false;
  private _state: BreakerState = "closed";
  readonly counters: BreakerCounters = { opened: 0, closed: 0, probes: 0, callsDiverted: 0, failures: 0 };

  constructor(private readonly o: BreakerOptions) {}

  /** The state at `nowMs` (an open breaker turns half-open once the cool-down is over). */
  state(nowMs: number): BreakerState {
    if (this._state === "open" && nowMs - this.openedAtMs >= this.o.cooldownMs) this._state = "half-open";
    return this._state;
  }

  /** Where a new call goes. A `probe: true` admission must later report `success` or `failure`, or `release`. */
  admit(nowMs: number): Admission {
    const s = this.state(nowMs);
    if (s === "closed") return { to: "primary", probe: false };
    if (s === "half-open" && !this.probing) {
      this.probing = true;
      this.counters.probes++;
      return { to: "primary", probe: true };
    }
    this.counters.callsDiverted++;
    return { to: "fallback" };
  }

  /** The primary failed a call (a probe's failure opens the breaker again). */
  failure(nowMs: number, probe = false): void {
    this.counters.failures++;
    if (probe || this.state(nowMs) === "half-open") {
      this.probing = false;
      this.open(nowMs);
      return;
    }
    if (this._state === "open") return;
    this.recent.push(nowMs);
    this.recent = this.recent.filter((t) => nowMs - t < this.o.windowMs);
    if (this.recent.length >= this.o.failures) this.open(nowMs);
  }

  /** The primary produced a result for a call; a probe's success closes the breaker. */
  success(nowMs: number, probe = false): void {
    if (!probe) return;
    this.probing = false;
    if (this.state(nowMs) === "half-open") {
      this._state = "closed";
      this.recent = [];
      this.counters.closed++;
    }
  }

  /** A probe call ended with no verdict: the next new call may probe. */
  release(probe: boolean): void {
    if (probe) this.probing = false;
  }

  private open(nowMs: number): void {
    this._state = "open";
    this.openedAtMs = nowMs;
    this.recent = [];
    this.counters.opened++;
  }
}
