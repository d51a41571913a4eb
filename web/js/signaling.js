// @ts-check
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
import { Emitter } from "./emitter.js";
import { parseServerMessage } from "./messages.js";

/**
 * @typedef {import("./messages.js").Participant} Participant
 * @typedef {import("./messages.js").TrackInfo} TrackInfo
 * @typedef {import("./messages.js").Joined} Joined
 * @typedef {import("./messages.js").ServerMessage} ServerMessage
 */

/**
 * A token, or an async function that returns one (called again for each reconnect, so it can
 * fetch a fresh token from the application).
 * @typedef {string | (() => string | Promise<string>)} TokenSource
 */

/**
 * Events of a SignalingClient (listen with `on(type, detail => ...)` or addEventListener; the
 * payload is the CustomEvent's detail). Every other server message type is dispatched too, with
 * the message as detail.
 * @typedef {object} SignalingEventMap
 * @property {Participant[]} participants the live list, this client included
 * @property {{participant: Participant}} participant_joined
 * @property {{participant_id: string, reason: string}} participant_left
 * @property {{participant_id: string, state: "connected" | "reconnecting"}} participant_connection
 * @property {{participant_id: string, track: TrackInfo}} track_published
 * @property {{participant_id: string, track: TrackInfo}} track_unpublished
 * @property {{participant_id: string, track: TrackInfo}} track_muted
 * @property {{speakers: {participant_id: string, level: number}[]}} active_speakers who speaks
 *   now, loudest first (`level` in dBov, 0 the loudest); sent only when the list changes
 * @property {{track_id: string, active: string[]}} layers dynacast: keep sending these
 *   simulcast encodings (rids) of one of our tracks, pause the others
 * @property {{sdp: string}} subscribe_offer
 * @property {{from: string, payload: unknown}} signal
 * @property {{reason: string, retry_after_ms?: number}} reconnect
 * @property {{code: string, message: string, ref?: number | string}} error
 * @property {{attempt: number, delayMs: number}} reconnecting the connection dropped; the next
 *   attempt starts in `delayMs` (or earlier, when the /healthz probe sees the server back)
 * @property {{resumed: boolean, joined: Joined}} reconnected
 * @property {{code: number, reason: string}} close final: no more reconnects
 */

/**
 * @typedef {object} SignalingOptions
 * @property {Backoff} [backoff] the reconnect delays (1 s doubling to 30 s, jittered)
 * @property {boolean} [probe] probe `GET /healthz` while the server is unreachable (true)
 */

const PROBE_MIN_MS = 1500;
const PROBE_MAX_MS = 2500;
const PROBE_TIMEOUT_MS = 2000;
// Closes after which reconnecting would be wrong (the user left, or was replaced or removed).
const FINAL_REASONS = new Set(["left", "duplicate_identity", "removed", "room_closed",
  "join_timeout", "rate limit exceeded"]);

export { backoffDelay } from "./backoff.js";

/**
 * The signaling URL of the server that served this page: ws(s)://host/ws.
 * @param {{protocol: string, host: string}} [location]
 * @returns {string}
 */
export function defaultSignalingUrl(location = window.location) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws`;
}

/**
 * The reachability probe URL of a signaling URL: same host, `/healthz`.
 * @param {string} signalingUrl
 * @param {string} [base] resolves a relative URL (the page's address)
 * @returns {string}
 */
export function healthUrl(signalingUrl, base = window.location.href) {
  const url = new URL(signalingUrl, base);
  url.protocol = url.protocol === "wss:" ? "https:" : "http:";
  url.pathname = "/healthz";
  url.search = "";
  return url.toString();
}

/**
 * Ask a dev-mode server for a token (POST /api/dev/token on this page's origin). Production
 * servers have no such route: tokens come from the application.
 * @param {string} room
 * @param {string} [name]
 * @param {"sfu" | "p2p"} [mode]
 * @returns {Promise<{token: string, identity: string, room: string}>}
 */
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

/** The server refused a request: `code` is the protocol's error code (docs/protocol.md). */
export class SignalingError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   */
  constructor(code, message) {
    super(`${code}: ${message}`);
    this.code = code;
  }
}

/**
 * One signaling session: connect, join a room, requests with replies, reconnect and resume.
 * @extends {Emitter<SignalingEventMap>}
 */
export class SignalingClient extends Emitter {
  /**
   * @param {string} [url] ws(s)://host:port/ws (default: the page's own server)
   * @param {SignalingOptions} [options]
   */
  constructor(url = defaultSignalingUrl(), { backoff = new Backoff(), probe = true } = {}) {
    super();
    this.url = url;
    /** @type {WebSocket | null} */
    this.ws = null;
    /** @type {Participant | null} this session, once joined */
    this.self = null;
    /** @type {{name: string, mode: "sfu" | "p2p"} | null} */
    this.room = null;
    /** @type {Map<string, Participant>} everyone in the room by id, this client included */
    this.participants = new Map();
    /** @type {{participant_id: string, track: TrackInfo}[]} tracks published when we joined */
    this.tracks = [];
    /** @type {RTCIceServer[]} */
    this.iceServers = [];
    /** @private */
    this._nextId = 1;
    /**
     * @private
     * @type {Map<number, {resolve: (m: ServerMessage) => void, reject: (e: Error) => void,
     *   timer: ReturnType<typeof setTimeout>}>}
     */
    this._pending = new Map();
    /**
     * @private
     * @type {ReturnType<typeof setInterval> | null}
     */
    this._pingTimer = null;
    /**
     * @private
     * @type {{room: string, token: TokenSource, name: string | undefined} | null}
     */
    this._joinArgs = null;
    /**
     * @private
     * @type {string | null}
     */
    this._resumeToken = null;
    /** @private */
    this._leaving = false;
    /** @private */
    this._backoff = backoff;
    /** @private */
    this._probeEnabled = probe;
    /**
     * The one pending reconnect attempt, when waiting.
     * @private
     * @type {ReturnType<typeof setTimeout> | null}
     */
    this._retryTimer = null;
    /**
     * @private
     * @type {ReturnType<typeof setTimeout> | null}
     */
    this._probeTimer = null;
    /** @private an attempt (connect + join) is in flight */
    this._attempting = false;
    /** @private the last attempt was started early by a probe, and failed */
    this._earlyUsed = false;
    /** Between a drop and the next successful join (or the final close). */
    this.reconnecting = false;
    /** @private */
    this._onPageHide = () => this.leave();
  }

  /**
   * Open the WebSocket; resolves once it is open, rejects if it closes first.
   * @returns {Promise<void>}
   */
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
   * @param {string} room
   * @param {TokenSource} token
   * @param {string} [name] display name (overrides the token's)
   * @returns {Promise<Joined>}
   */
  async join(room, token, name) {
    this._joinArgs = { room, token, name };
    this._leaving = false;
    const joined = await this._join();
    window.addEventListener("pagehide", this._onPageHide);
    return joined;
  }

  /**
   * @private
   * @returns {Promise<Joined>}
   */
  async _join() {
    if (!this._joinArgs) throw new Error("join() first");
    const { room, token, name } = this._joinArgs;
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) await this.connect();
    const jwt = typeof token === "function" ? await token() : token;
    /** @type {{type: string, [field: string]: unknown}} */
    const message = { type: "join", room, token: jwt, name };
    if (this._resumeToken) message.resume = this._resumeToken;
    const joined = /** @type {Joined} */ (await this.request(message));
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
    clearInterval(this._pingTimer ?? undefined);
    this._pingTimer = setInterval(() => this.send({ type: "ping", ts: Date.now() }), every);
    this._backoff.up(Date.now());
    return joined;
  }

  /**
   * Send a message and wait for the reply that carries its id as `ref`; rejects with a
   * SignalingError when the reply is an `error`, with an Error on timeout or disconnect.
   * @param {{type: string, [field: string]: unknown}} message
   * @param {number} [timeoutMs]
   * @returns {Promise<ServerMessage>}
   */
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

  /**
   * Send a message if connected; false when not (nothing is queued).
   * @param {{type: string, [field: string]: unknown}} message
   * @returns {boolean}
   */
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

  /** @private */
  _stop() {
    clearInterval(this._pingTimer ?? undefined);
    this._pingTimer = null;
  }

  /**
   * @private
   * @param {string} text
   */
  _onMessage(text) {
    const message = parseServerMessage(text);
    if (!message) return;
    const waiting = typeof message.ref === "number" ? this._pending.get(message.ref) : undefined;
    if (waiting && typeof message.ref === "number") {
      const { resolve, reject, timer } = waiting;
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

  /**
   * @private
   * @param {WebSocket} ws
   * @param {CloseEvent} event
   */
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

  /**
   * @private
   * @param {number} code
   * @param {string} reason
   */
  _finish(code, reason) {
    this.reconnecting = false;
    window.removeEventListener("pagehide", this._onPageHide);
    this.emit("close", { code, reason });
  }

  /**
   * Wait out the next backoff step, then attempt; never more than one pending attempt.
   * @private
   * @param {boolean} unreachable the server did not answer (probe /healthz meanwhile)
   */
  _scheduleReconnect(unreachable) {
    if (this._leaving || this._retryTimer !== null || this._attempting) return;
    const delayMs = this._backoff.next();
    this.reconnecting = true;
    this.emit("reconnecting", { attempt: this._backoff.attempt, delayMs });
    this._retryTimer = setTimeout(() => this._attempt(), delayMs);
    if (unreachable && this._probeEnabled && !this._earlyUsed) this._scheduleProbe();
  }

  /** @private */
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

  /**
   * Whether the server answers HTTP again.
   * @private
   * @returns {Promise<boolean>}
   */
  async _reachable() {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), PROBE_TIMEOUT_MS);
    const url = healthUrl(this.url);
    // An application on another origin gets no CORS headers from /healthz: its answer is opaque
    // (status unreadable), but that an answer came at all says the server is back.
    const crossOrigin = new URL(url).origin !== window.location.origin;
    try {
      const response = await fetch(url, {
        cache: "no-store", signal: controller.signal, mode: crossOrigin ? "no-cors" : "cors",
      });
      return response.ok || response.type === "opaque";
    } catch {
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  /** @private */
  _cancelRetry() {
    clearTimeout(this._retryTimer ?? undefined);
    clearTimeout(this._probeTimer ?? undefined);
    this._retryTimer = this._probeTimer = null;
  }

  /**
   * @private
   * @param {boolean} [early] started by the probe, before the backoff step ran out
   */
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
    this.emit("reconnected", { resumed: joined.resumed, joined });
  }

  /** @private */
  _emitParticipants() {
    this.emit("participants", [...this.participants.values()]);
  }
}

class UnreachableError extends Error {}
