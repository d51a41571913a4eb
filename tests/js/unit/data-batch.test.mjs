// Unit tests of web/js/data-batch.js: how outgoing DataChannel messages are queued and batched.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  DATA_BATCH_MAX_BYTES,
  DATA_BATCH_MAX_MESSAGES,
  DataOutbox,
  encodeDataMessage,
  takeBatches,
  utf8Length,
} from "../../../web/js/data-batch.js";

const message = (i, pad = 0) => encodeDataMessage("t", { i, pad: "x".repeat(pad) });

/** Every message of the frames, in order (a frame is one message or an array of them). */
function unbatch(frames) {
  return frames.flatMap((f) => {
    const value = JSON.parse(f);
    return Array.isArray(value) ? value : [value];
  });
}

test("a message is {topic, payload} and `to` only when targeted", () => {
  assert.equal(encodeDataMessage("chat", { a: 1 }), '{"topic":"chat","payload":{"a":1}}');
  assert.equal(encodeDataMessage("chat", 1, ["PA_x"]), '{"topic":"chat","payload":1,"to":["PA_x"]}');
});

test("a bad topic or a payload JSON cannot hold is a TypeError at the call", () => {
  assert.throws(() => encodeDataMessage("", 1), TypeError);
  assert.throws(() => encodeDataMessage(undefined, 1), TypeError);
  assert.throws(() => encodeDataMessage("t", 10n), TypeError);
});

test("a lone message goes as itself, not as an array", () => {
  assert.deepEqual(takeBatches([message(1)]), [message(1)]);
});

test("small messages share frames within the byte budget, in order, and the queue empties", () => {
  const pending = Array.from({ length: 40 }, (_, i) => message(i, 60));
  const frames = takeBatches(pending);
  assert.equal(pending.length, 0);
  assert.ok(frames.length > 1 && frames.length < 40, `${frames.length} frames`);
  for (const frame of frames) assert.ok(utf8Length(frame) <= DATA_BATCH_MAX_BYTES, frame.length);
  assert.deepEqual(unbatch(frames).map((m) => m.payload.i), Array.from({ length: 40 }, (_, i) => i));
});

test("a batch never holds more messages than the relay accepts", () => {
  const pending = Array.from({ length: 200 }, () => "{}"); // tiny: bytes alone would allow ~360
  const frames = takeBatches(pending, 100000);
  for (const frame of frames) assert.ok(JSON.parse(frame).length <= DATA_BATCH_MAX_MESSAGES);
  assert.equal(unbatch(frames).length, 200);
});

test("a message over the budget goes alone", () => {
  const big = message(0, 5000);
  const frames = takeBatches([message(1), big, message(2)]);
  assert.deepEqual(frames, [message(1), big, message(2)]);
});

test("the budget counts UTF-8 bytes, not UTF-16 units", () => {
  assert.equal(utf8Length("aé€😀"), 1 + 2 + 3 + 4);
  const wide = Array.from({ length: 20 }, (_, i) => encodeDataMessage("t", `${i}${"€".repeat(30)}`));
  for (const frame of takeBatches(wide)) {
    assert.ok(new TextEncoder().encode(frame).length <= DATA_BATCH_MAX_BYTES);
  }
});

test("the outbox keeps channels apart and drops beyond its bound", () => {
  const outbox = new DataOutbox({ maxQueued: 3 });
  assert.equal(outbox.push("reliable", message(1)), true);
  assert.equal(outbox.push("lossy", message(9)), true);
  assert.equal(outbox.push("reliable", message(2)), true);
  assert.equal(outbox.push("reliable", message(3)), true);
  assert.equal(outbox.push("reliable", message(4)), false);
  assert.equal(outbox.size("reliable"), 3);
  assert.deepEqual(unbatch(outbox.drain("reliable")).map((m) => m.payload.i), [1, 2, 3]);
  assert.equal(outbox.size("reliable"), 0);
  assert.equal(outbox.push("reliable", message(5)), true);
  assert.deepEqual(unbatch(outbox.drain("lossy")).map((m) => m.payload.i), [9]);
  assert.deepEqual(outbox.drain("unknown"), []);
});
