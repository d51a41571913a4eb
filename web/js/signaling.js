// relayroom signaling client: one WebSocket, protocol v1 (see docs/protocol.md).
// Plain ES module, no dependencies. Events are dispatched as CustomEvent(type, {detail: msg})
// for every server message type, plus "participants" (the live list), "reconnecting"
// {attempt, delayMs}, "reconnected" {resumed, joined} and "close" (final).
//
// A dropped connection is retried with exponential backoff and jitter (1 s doubling to 30 s).
// The first join after a drop carries the resume token: within the server's resume window the
// session continues as it was (resumed: true); otherwise it is a fresh participant
// (resumed: false) and the media layer renegotiates from scratch.

const BACKOFF_FIRST_MS = 1000;
const BACKOFF_MAX_MS = 30000;
// Closes after which reconnecting would be wrong (the user left, or was replaced or removed).
const FINAL_REASONS = new Set(["left", "duplicate_identity", "removed", "room_closed",
  "join_timeout", "rate limit exceeded"]);

export function backoffDelay(attempt, random = Math.random) {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** attempt);
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

export function defaultSignalingUrl(location = window.location) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws`;
}

/** Ask a dev-mode server for a token (POST /api/dev/token). */
export async function fetchDevToken(room, name, mode) {
  const response = await fetch("/api/dev/token", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ room, name, mode }),
  });
  if (!response.ok) {
    throw new Error(`token request failed: ${response.status} ${await response.text()}`);
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
  constructor(url = defaultSignalingUrl()) {
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
    this._attempt = 0;
    this._retryTimer = null;
    this.reconnecting = false;
  }

  /** Open the WebSocket; resolves once it is open. */
  connect() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      this.ws = ws;
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error("WebSocket connection failed"));
      ws.onmessage = (event) => this._onMessage(event.data);
      ws.onclose = (event) => this._onClose(event);
    });
  }

  /**
   * Join a room; resolves with the `joined` message. `token` is a JWT string or an async
   * function returning one (called again when a reconnect needs a fresh token).
   */
  async join(room, token, name) {
    this._joinArgs = { room, token, name };
    this._leaving = false;
    return this._join();
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
    this._pingTimer = setInterval(() => this.send({ type: "ping", ts: Date.now() }), every);
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
      this.send({ ...message, id });
    });
  }

  send(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(message));
      return true;
    }
    return false;
  }

  leave() {
    this._leaving = true;
    clearTimeout(this._retryTimer);
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
    }
    this.dispatchEvent(new CustomEvent(message.type, { detail: message }));
  }

  _onClose(event) {
    this._stop();
    for (const { reject, timer } of this._pending.values()) {
      clearTimeout(timer);
      reject(new Error(`connection closed (${event.code} ${event.reason})`));
    }
    this._pending.clear();
    const wasJoined = this.self !== null || this.reconnecting;
    if (!this._leaving && wasJoined && !FINAL_REASONS.has(event.reason) && event.code !== 1009) {
      this._scheduleReconnect();
      return;
    }
    this.reconnecting = false;
    this.dispatchEvent(new CustomEvent("close", { detail: { code: event.code, reason: event.reason } }));
  }

  _scheduleReconnect() {
    const delayMs = backoffDelay(this._attempt);
    this._attempt += 1;
    this.reconnecting = true;
    this.dispatchEvent(new CustomEvent("reconnecting", { detail: { attempt: this._attempt, delayMs } }));
    this._retryTimer = setTimeout(async () => {
      if (this._leaving) return;
      try {
        const joined = await this._join();
        this._attempt = 0;
        this.reconnecting = false;
        this.dispatchEvent(new CustomEvent("reconnected", { detail: { resumed: joined.resumed, joined } }));
      } catch (error) {
        // A failed attempt closes or never opens the socket; either way, try again later.
        if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.close();
        else this._scheduleReconnect();
      }
    }, delayMs);
  }

  _emitParticipants() {
    this.dispatchEvent(new CustomEvent("participants", { detail: [...this.participants.values()] }));
  }
}
