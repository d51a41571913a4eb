// @ts-check
// Reconnect backoff, pure (no timers, no DOM): the caller asks for the next delay and reports
// when a connection came up and went down. Unit-tested with `node --test` (tests/js/unit/).
//
// Delays: 1 s doubling to 30 s, each drawn from the upper half of its step ([c/2, c]) so that
// clients cut off together spread out instead of returning in lockstep. The step count resets
// only after a stable connection (up for `stableMs`): a server that accepts and then drops
// connections at once must not be hammered at the 1 s rate.

export const BACKOFF_FIRST_MS = 1000;
export const BACKOFF_MAX_MS = 30000;
export const STABLE_MS = 10000;

/**
 * The ceiling of step `attempt` (0-based): 1 s, 2 s, 4 s, ... capped at `maxMs`.
 * @param {number} attempt
 * @param {number} [firstMs]
 * @param {number} [maxMs]
 * @returns {number}
 */
export function backoffCeiling(attempt, firstMs = BACKOFF_FIRST_MS, maxMs = BACKOFF_MAX_MS) {
  return Math.min(maxMs, firstMs * 2 ** Math.min(attempt, 30));
}

/**
 * The delay before attempt `attempt`: uniform in [ceiling/2, ceiling].
 * @param {number} attempt
 * @param {() => number} [random] a source of numbers in [0, 1)
 * @param {number} [firstMs]
 * @param {number} [maxMs]
 * @returns {number}
 */
export function backoffDelay(attempt, random = Math.random, firstMs = BACKOFF_FIRST_MS,
  maxMs = BACKOFF_MAX_MS) {
  const ceiling = backoffCeiling(attempt, firstMs, maxMs);
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/**
 * @typedef {object} BackoffOptions
 * @property {number} [firstMs] the first step's ceiling (1000)
 * @property {number} [maxMs] the largest ceiling (30000)
 * @property {number} [stableMs] how long a connection must stay up to reset the steps (10000)
 * @property {() => number} [random] a source of numbers in [0, 1) (Math.random)
 */

export class Backoff {
  /** @param {BackoffOptions} [options] */
  constructor({ firstMs = BACKOFF_FIRST_MS, maxMs = BACKOFF_MAX_MS, stableMs = STABLE_MS,
    random = Math.random } = {}) {
    this.firstMs = firstMs;
    this.maxMs = maxMs;
    this.stableMs = stableMs;
    this.random = random;
    this.attempt = 0; // attempts since the last stable connection
    /** @type {number | null} */
    this._upSince = null;
  }

  /**
   * The delay before the next attempt; counts the attempt.
   * @returns {number}
   */
  next() {
    const delay = backoffDelay(this.attempt, this.random, this.firstMs, this.maxMs);
    this.attempt += 1;
    return delay;
  }

  /**
   * A connection is up (joined) at time `now` (ms).
   * @param {number} now
   */
  up(now) {
    this._upSince = now;
  }

  /**
   * The connection went down at `now`: reset the steps only if it had been up long enough.
   * @param {number} now
   */
  down(now) {
    if (this._upSince !== null && now - this._upSince >= this.stableMs) this.attempt = 0;
    this._upSince = null;
  }
}
