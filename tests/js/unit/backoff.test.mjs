// Unit tests of web/js/backoff.js with Node's own test runner (run from tests/js/test_client_sdk.py).
import assert from "node:assert/strict";
import { test } from "node:test";

import { Backoff, backoffCeiling, backoffDelay } from "../../../web/js/backoff.js";

test("ceilings double from 1 s and stop at 30 s", () => {
  const ceilings = [0, 1, 2, 3, 4, 5, 6, 20, 1000].map((n) => backoffCeiling(n));
  assert.deepEqual(ceilings, [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]);
});

test("each delay lies in the upper half of its step", () => {
  for (let attempt = 0; attempt < 10; attempt++) {
    const ceiling = backoffCeiling(attempt);
    assert.equal(backoffDelay(attempt, () => 0), ceiling / 2);
    assert.equal(backoffDelay(attempt, () => 1), ceiling);
    const mid = backoffDelay(attempt, () => 0.5);
    assert.ok(mid > ceiling / 2 && mid < ceiling, `${attempt}: ${mid}`);
  }
});

test("jitter spreads clients cut off together", () => {
  const delays = new Set();
  for (let i = 0; i < 50; i++) delays.add(new Backoff().next());
  assert.ok(delays.size > 10, `only ${delays.size} distinct first delays`);
});

test("consecutive failures walk the steps", () => {
  const backoff = new Backoff({ random: () => 1 });
  const delays = Array.from({ length: 8 }, () => backoff.next());
  assert.deepEqual(delays, [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  assert.equal(backoff.attempt, 8);
});

test("a connection dropped before it was stable does not reset the steps", () => {
  const backoff = new Backoff({ random: () => 1 });
  backoff.next();
  backoff.next();
  backoff.next();
  backoff.up(100_000);
  backoff.down(100_000 + 9_999); // joined, then dropped within 10 s
  assert.equal(backoff.next(), 8000);
});

test("a stable connection resets the steps", () => {
  const backoff = new Backoff({ random: () => 1 });
  for (let i = 0; i < 6; i++) backoff.next();
  backoff.up(0);
  backoff.down(10_000);
  assert.equal(backoff.attempt, 0);
  assert.equal(backoff.next(), 1000);
});

test("a drop without a connection in between changes nothing", () => {
  const backoff = new Backoff({ random: () => 1 });
  backoff.next();
  backoff.down(1e9);
  assert.equal(backoff.next(), 2000);
});

test("settings are honoured", () => {
  const backoff = new Backoff({ firstMs: 100, maxMs: 250, stableMs: 5, random: () => 1 });
  assert.deepEqual([backoff.next(), backoff.next(), backoff.next()], [100, 200, 250]);
  backoff.up(0);
  backoff.down(5);
  assert.equal(backoff.next(), 100);
});
