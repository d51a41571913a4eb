// relayroom signaling client: one WebSocket, protocol v1 (see docs/protocol.md).
// Plain ES module, no dependencies. Events are dispatched as CustomEvent(type, {detail: msg})
// for every server message type, plus "participants" (the live list) and "close".

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

  /** Join a room with a token; resolves with the `joined` message. */
  async join(room, token, name) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) await this.connect();
    const joined = await this.request({ type: "join", room, token, name });
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
    this.dispatchEvent(new CustomEvent("close", { detail: { code: event.code, reason: event.reason } }));
  }

  _emitParticipants() {
    this.dispatchEvent(new CustomEvent("participants", { detail: [...this.participants.values()] }));
  }
}
