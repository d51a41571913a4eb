// Unit tests of web/js/messages.js: what the client accepts off the wire.
import assert from "node:assert/strict";
import { test } from "node:test";

import { parseDataFrame, parseServerMessage } from "../../../web/js/messages.js";

test("a signaling frame is an object with a string type", () => {
  assert.deepEqual(parseServerMessage('{"type":"pong","ts":5}'), { type: "pong", ts: 5 });
  assert.deepEqual(parseServerMessage('{"type":"error","code":"x","message":"m","ref":3}').ref, 3);
});

test("anything else is dropped, never thrown", () => {
  for (const text of ["", "not json", "null", "[]", '[{"type":"pong"}]', '"pong"', "7",
    '{"ts":1}', '{"type":7}', '{"type":""}', '{"type":null}']) {
    assert.equal(parseServerMessage(text), null, text);
  }
});

test("one data message becomes one data event with from, to and the channel", () => {
  const events = parseDataFrame('{"topic":"chat","payload":{"text":"hi"},"to":["PA_b"],"from":"PA_a"}', false);
  assert.deepEqual(events, [{ type: "data", detail:
    { topic: "chat", payload: { text: "hi" }, from: "PA_a", to: ["PA_b"], lossy: false } }]);
  const [cursor] = parseDataFrame('{"topic":"cursor","payload":[1,2],"from":"PA_c"}', true);
  assert.deepEqual(cursor.detail, { topic: "cursor", payload: [1, 2], from: "PA_c", to: undefined, lossy: true });
});

test("a batch keeps its order and skips only the items that are not messages", () => {
  const text = JSON.stringify([{ topic: "a", payload: 1, from: "x" }, 5, null, [], { payload: 2 },
    { topic: 3, payload: 3 }, { topic: "b", payload: null, from: "y" }]);
  const events = parseDataFrame(text, false);
  assert.deepEqual(events.map((e) => [e.type, e.detail.topic, e.detail.payload]),
    [["data", "a", 1], ["data", "b", null]]);
});

test("the relay's sync announcement is a datasync event, in its place in the batch", () => {
  const text = JSON.stringify([
    { topic: "relay", payload: { op: "sync", reason: "join", count: 2 }, from: "server" },
    { topic: "whiteboard", payload: { op: "clear" }, from: "PA_a" },
  ]);
  const events = parseDataFrame(text, false);
  assert.deepEqual(events.map((e) => e.type), ["datasync", "data"]);
  assert.deepEqual(events[0].detail, { op: "sync", reason: "join", count: 2 });
});

test("other relay-topic messages are the server's own and never reach the page", () => {
  assert.deepEqual(parseDataFrame('{"topic":"relay","payload":{"op":"later"}}', false), []);
  assert.deepEqual(parseDataFrame('{"topic":"relay","payload":"sync"}', false), []);
});

test("a frame that is not JSON, or holds no message, gives nothing", () => {
  for (const text of ["", "{", "null", "42", '"text"', "[]", "[1,2]", '{"payload":1}']) {
    assert.deepEqual(parseDataFrame(text, false), [], text);
  }
});

test("a forged non-string from or a non-array to is not passed on as such", () => {
  const [event] = parseDataFrame('{"topic":"t","payload":0,"from":{"id":1},"to":"PA_b"}', false);
  assert.equal(event.detail.from, undefined);
  assert.equal(event.detail.to, undefined);
});
