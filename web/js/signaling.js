// relayroom signaling client: one WebSocket, protocol v1 (see docs/protocol.md).
// Plain ES module, no dependencies. Events are dispatched as CustomEvent(type, {detail: msg})
// for every server message type, plus "participants" (the live list), "reconnecting"
// {attempt, delayMs}, "reconnected" {resumed, joined} and "close" (final).
//
// A dropped connection is retried by exactly one pending attempt at a time, with backoff and
// jitter (1 s doubling to 30 s, see backoff.js), reset only after a stable connection. While the
// server is unreachable, a cheap `GET /healthz` probe every ~2 s lets the client come back within
// seconds of the server's return instead of sleeping out a 30 s step; at most one attempt per
// step is started early that way, so a server that answers HTTP but refuses sessions still gets
// the plain backoff. The first join after a drop carries the resume token: within the server's
// resume window the session continues as it was (resumed: true); otherwise it is a fresh
// participant (resumed: false) and the media layer renegotiates from scratch.
// A page that is closed or navigated away sends `leave` (pagehide, best effort), so it leaves the
// room at once; the resume window is for network loss only.

import { Backoff } from "./backoff.js";

const PROBE_MIN_MS = 1500;
const PROBE_MAX_MS = 2500;
const PROBE_TIMEOUT_MS = 2000;
// Closes after which reconnecting would be wrong (the user left, or was replaced or removed).
const FINAL_REASONS = new Set(["left", "duplicate_identity", "removed", "room_closed",
  "join_timeout", "rate limit exceeded"]);

export { backoffDelay } from "./backoff.js";

export function defaultSignalingUrl(location = window.location) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws`;
}

/** The reachability probe URL of a signaling URL: same host, `/healthz`. */
export function healthUrl(signalingUrl) {
  const url = new URL(signalingUrl, window.location.href);
  url.protocol = url.protocol === "wss:" ? "https:" : "http:";
  url.pathname = "/healthz";
  url.search = "";
  return url.toString();
}

/** Ask a dev-mode server for a token (POST /api/dev/token). */
export async function fetchDevToken(room, name, mode) {
  let response;
  try {
    response = await fetch("/api/dev/token", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ room, name, mode }),
    });
  } catch {
    throw new Error("the server cannot be reached");
  }
  if (response.status === 404 || response.status === 405) {
    // Production servers mint no tokens for pages: the application that embeds relayroom does.
    throw new Error("this server is not in dev mode, so it does not hand out tokens: tokens " +
      "come from your application (minted with the server's API secret, or with " +
      "`relayroom token`). Paste one in the Token field.");
  }
  if (!response.ok) {
    throw new Error(`token request failed: ${response.status} ${(await response.text()).trim()}`);
  }
  return response.json();
}

export class SignalingError extends Error {
  constructor(code, message) {
    super(`${code}: ${message}`);
    this.code = code;
  }
}

export class SignalingClient extends EventTarget {
  constructor(url = defaultSignalingUrl(), { backoff = new Backoff(), probe = true } = {}) {
    super();
    this.url = url;
    this.ws = null;
    this.self = null;
    this.room = null;
    this.participants = new Map();
    this.tracks = [];
    this.iceServers = [];
    this._nextId = 1;
    this._pending = new Map();
    this._pingTimer = null;
    this._joinArgs = null;
    this._resumeToken = null;
    this._leaving = false;
    this._backoff = backoff;
    this._probeEnabled = probe;
    this._retryTimer = null; // the one pending reconnect attempt, when waiting
    this._probeTimer = null;
    this._attempting = false; // an attempt (connect + join) is in flight
    this._earlyUsed = false; // the last attempt was started early by a probe, and failed
    this.reconnecting = false;
    this._onPageHide = () => this.leave();
  }

  /** Open the WebSocket; resolves once it is open, rejects if it closes first. */
  connect() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      this.ws = ws;
      let opened = false;
      ws.onopen = () => {
        opened = true;
        resolve();
      };
      ws.onerror = () => {
        if (!opened) reject(new UnreachableError("WebSocket connection failed"));
      };
      ws.onmessage = (event) => this._onMessage(event.data);
      ws.onclose = (event) => {
        if (!opened) reject(new UnreachableError("WebSocket connection failed"));
        this._onClose(ws, event);
      };
    });
  }

  /**
   * Join a room; resolves with the `joined` message. `token` is a JWT string or an async
   * function returning one (called again when a reconnect needs a fresh token).
   */
  async join(room, token, name) {
    this._joinArgs = { room, token, name };
    this._leaving = false;
    const joined = await this._join();
    window.addEventListener("pagehide", this._onPageHide);
    return joined;
  }

  async _join() {
    const { room, token, name } = this._joinArgs;
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) await this.connect();
    const jwt = typeof token === "function" ? await token() : token;
    const message = { type: "join", room, token: jwt, name };
    if (this._resumeToken) message.resume = this._resumeToken;
    const joined = await this.request(message);
    this._resumeToken = joined.resume_token;
    this.self = joined.participant;
    this.room = joined.room;
    this.iceServers = joined.ice_servers || [];
    this.tracks = joined.tracks || [];
    this.participants = new Map([[joined.participant.id, joined.participant]]);
    for (const p of joined.participants) this.participants.set(p.id, p);
    this._emitParticipants();
    // Application-level keepalive; the server also pings at the WebSocket level.
    const every = Math.max(5, (joined.heartbeat_s || 20) / 2) * 1000;
    clearInterval(this._pingTimer);
    this._pingTimer = setInterval(() => this.send({ type: "ping", ts: Date.now() }), every);
    this._backoff.up(Date.now());
    return joined;
  }

  /** Send a message and wait for the reply that carries its id as `ref`. */
  request(message, timeoutMs = 10000) {
    const id = this._nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new Error(`${message.type}: no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this._pending.set(id, { resolve, reject, timer });
      if (!this.send({ ...message, id })) {
        clearTimeout(timer);
        this._pending.delete(id);
        reject(new Error(`${message.type}: not connected`));
      }
    });
  }

  send(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(message));
      return true;
    }
    return false;
  }

  /** Leave the room for good (also on pagehide): the others see us go at once. */
  leave() {
    if (this._leaving) return;
    this._leaving = true;
    window.removeEventListener("pagehide", this._onPageHide);
    this._cancelRetry();
    this.send({ type: "leave" });
    this._stop();
  }

  _stop() {
    clearInterval(this._pingTimer);
    this._pingTimer = null;
  }

  _onMessage(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    if (message.ref !== undefined && this._pending.has(message.ref)) {
      const { resolve, reject, timer } = this._pending.get(message.ref);
      clearTimeout(timer);
      this._pending.delete(message.ref);
      if (message.type === "error") reject(new SignalingError(message.code, message.message));
      else resolve(message);
    }
    if (message.type === "participant_joined") {
      this.participants.set(message.participant.id, message.participant);
      this._emitParticipants();
    } else if (message.type === "participant_left") {
      this.participants.delete(message.participant_id);
      this._emitParticipants();
    } else if (message.type === "participant_connection") {
      const participant = this.participants.get(message.participant_id);
      if (participant) participant.connection = message.state;
    }
    this.dispatchEvent(new CustomEvent(message.type, { detail: message }));
  }

  _onClose(ws, event) {
    if (ws !== this.ws) return; // a socket we already gave up on
    this.ws = null;
    this._stop();
    for (const { reject, timer } of this._pending.values()) {
      clearTimeout(timer);
      reject(new Error(`connection closed (${event.code} ${event.reason})`));
    }
    this._pending.clear();
    // An attempt in flight handles its own failure (one attempt at a time).
    if (this._attempting) return;
    const wasJoined = this.self !== null || this.reconnecting;
    if (!this._leaving && wasJoined && !FINAL_REASONS.has(event.reason) && event.code !== 1009) {
      this._backoff.down(Date.now());
      this._earlyUsed = false;
      this._scheduleReconnect(false);
      return;
    }
    this._finish(event.code, event.reason);
  }

  _finish(code, reason) {
    this.reconnecting = false;
    window.removeEventListener("pagehide", this._onPageHide);
    this.dispatchEvent(new CustomEvent("close", { detail: { code, reason } }));
  }

  /** Wait out the next backoff step, then attempt; never more than one pending attempt. */
  _scheduleReconnect(unreachable) {
    if (this._leaving || this._retryTimer !== null || this._attempting) return;
    const delayMs = this._backoff.next();
    this.reconnecting = true;
    this.dispatchEvent(new CustomEvent("reconnecting",
      { detail: { attempt: this._backoff.attempt, delayMs } }));
    this._retryTimer = setTimeout(() => this._attempt(), delayMs);
    if (unreachable && this._probeEnabled && !this._earlyUsed) this._scheduleProbe();
  }

  _scheduleProbe() {
    const delay = PROBE_MIN_MS + Math.random() * (PROBE_MAX_MS - PROBE_MIN_MS);
    this._probeTimer = setTimeout(async () => {
      this._probeTimer = null;
      if (this._retryTimer === null) return;
      if (await this._reachable()) {
        if (this._retryTimer === null) return;
        this._attempt(true);
      } else if (this._retryTimer !== null) {
        this._scheduleProbe();
      }
    }, delay);
  }

  async _reachable() {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), PROBE_TIMEOUT_MS);
    try {
      const response = await fetch(healthUrl(this.url), { cache: "no-store", signal: controller.signal });
      return response.ok;
    } catch {
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  _cancelRetry() {
    clearTimeout(this._retryTimer);
    clearTimeout(this._probeTimer);
    this._retryTimer = this._probeTimer = null;
  }

  async _attempt(early = false) {
    this._cancelRetry();
    if (this._leaving || this._attempting) return;
    this._attempting = true;
    let joined;
    try {
      joined = await this._join();
    } catch (error) {
      this._attempting = false;
      const ws = this.ws;
      this.ws = null; // its close event is ignored: this attempt schedules the next one
      if (ws && ws.readyState !== WebSocket.CLOSED) ws.close();
      this._stop();
      if (this._leaving) return;
      if (error instanceof SignalingError && error.code === "forbidden") {
        this._finish(1008, error.message);
        return;
      }
      // After an early (probe-started) attempt fails, the next step is waited out in full.
      this._earlyUsed = early;
      this._scheduleReconnect(error instanceof UnreachableError);
      return;
    }
    this._attempting = false;
    this._earlyUsed = false;
    this.reconnecting = false;
    this.dispatchEvent(new CustomEvent("reconnected", { detail: { resumed: joined.resumed, joined } }));
  }

  _emitParticipants() {
    this.dispatchEvent(new CustomEvent("participants", { detail: [...this.participants.values()] }));
  }
}

class UnreachableError extends Error {}
