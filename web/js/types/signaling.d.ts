/**
 * The signaling URL of the server that served this page: ws(s)://host/ws.
 * @param {{protocol: string, host: string}} [location]
 * @returns {string}
 */
export function defaultSignalingUrl(location?: {
    protocol: string;
    host: string;
}): string;
/**
 * The reachability probe URL of a signaling URL: same host, `/healthz`.
 * @param {string} signalingUrl
 * @param {string} [base] resolves a relative URL (the page's address)
 * @returns {string}
 */
export function healthUrl(signalingUrl: string, base?: string): string;
/**
 * Ask a dev-mode server for a token (POST /api/dev/token on this page's origin). Production
 * servers have no such route: tokens come from the application.
 * @param {string} room
 * @param {string} [name]
 * @param {"sfu" | "p2p"} [mode]
 * @returns {Promise<{token: string, identity: string, room: string}>}
 */
export function fetchDevToken(room: string, name?: string, mode?: "sfu" | "p2p"): Promise<{
    token: string;
    identity: string;
    room: string;
}>;
export { backoffDelay } from "./backoff.js";
/** The server refused a request: `code` is the protocol's error code (docs/protocol.md). */
export class SignalingError extends Error {
    /**
     * @param {string} code
     * @param {string} message
     */
    constructor(code: string, message: string);
    code: string;
}
/**
 * One signaling session: connect, join a room, requests with replies, reconnect and resume.
 * @extends {Emitter<SignalingEventMap>}
 */
export class SignalingClient extends Emitter<SignalingEventMap> {
    /**
     * @param {string} [url] ws(s)://host:port/ws (default: the page's own server)
     * @param {SignalingOptions} [options]
     */
    constructor(url?: string, { backoff, probe }?: SignalingOptions);
    url: string;
    /** @type {WebSocket | null} */
    ws: WebSocket | null;
    /** @type {Participant | null} this session, once joined */
    self: Participant | null;
    /** @type {{name: string, mode: "sfu" | "p2p"} | null} */
    room: {
        name: string;
        mode: "sfu" | "p2p";
    } | null;
    /** @type {Map<string, Participant>} everyone in the room by id, this client included */
    participants: Map<string, Participant>;
    /** @type {{participant_id: string, track: TrackInfo}[]} tracks published when we joined */
    tracks: {
        participant_id: string;
        track: TrackInfo;
    }[];
    /** @type {RTCIceServer[]} */
    iceServers: RTCIceServer[];
    /** @private */
    private _nextId;
    /**
     * @private
     * @type {Map<number, {resolve: (m: ServerMessage) => void, reject: (e: Error) => void,
     *   timer: ReturnType<typeof setTimeout>}>}
     */
    private _pending;
    /**
     * @private
     * @type {ReturnType<typeof setInterval> | null}
     */
    private _pingTimer;
    /**
     * @private
     * @type {{room: string, token: TokenSource, name: string | undefined} | null}
     */
    private _joinArgs;
    /**
     * @private
     * @type {string | null}
     */
    private _resumeToken;
    /** @private */
    private _leaving;
    /** @private */
    private _backoff;
    /** @private */
    private _probeEnabled;
    /**
     * The one pending reconnect attempt, when waiting.
     * @private
     * @type {ReturnType<typeof setTimeout> | null}
     */
    private _retryTimer;
    /**
     * @private
     * @type {ReturnType<typeof setTimeout> | null}
     */
    private _probeTimer;
    /** @private an attempt (connect + join) is in flight */
    private _attempting;
    /** @private the last attempt was started early by a probe, and failed */
    private _earlyUsed;
    /** Between a drop and the next successful join (or the final close). */
    reconnecting: boolean;
    /** @private */
    private _onPageHide;
    /**
     * Open the WebSocket; resolves once it is open, rejects if it closes first.
     * @returns {Promise<void>}
     */
    connect(): Promise<void>;
    /**
     * Join a room; resolves with the `joined` message. `token` is a JWT string or an async
     * function returning one (called again when a reconnect needs a fresh token).
     * @param {string} room
     * @param {TokenSource} token
     * @param {string} [name] display name (overrides the token's)
     * @returns {Promise<Joined>}
     */
    join(room: string, token: TokenSource, name?: string): Promise<Joined>;
    /**
     * @private
     * @returns {Promise<Joined>}
     */
    private _join;
    /**
     * Send a message and wait for the reply that carries its id as `ref`; rejects with a
     * SignalingError when the reply is an `error`, with an Error on timeout or disconnect.
     * @param {{type: string, [field: string]: unknown}} message
     * @param {number} [timeoutMs]
     * @returns {Promise<ServerMessage>}
     */
    request(message: {
        type: string;
        [field: string]: unknown;
    }, timeoutMs?: number): Promise<ServerMessage>;
    /**
     * Send a message if connected; false when not (nothing is queued).
     * @param {{type: string, [field: string]: unknown}} message
     * @returns {boolean}
     */
    send(message: {
        type: string;
        [field: string]: unknown;
    }): boolean;
    /** Leave the room for good (also on pagehide): the others see us go at once. */
    leave(): void;
    /** @private */
    private _stop;
    /**
     * @private
     * @param {string} text
     */
    private _onMessage;
    /**
     * @private
     * @param {WebSocket} ws
     * @param {CloseEvent} event
     */
    private _onClose;
    /**
     * @private
     * @param {number} code
     * @param {string} reason
     */
    private _finish;
    /**
     * Wait out the next backoff step, then attempt; never more than one pending attempt.
     * @private
     * @param {boolean} unreachable the server did not answer (probe /healthz meanwhile)
     */
    private _scheduleReconnect;
    /** @private */
    private _scheduleProbe;
    /**
     * Whether the server answers HTTP again.
     * @private
     * @returns {Promise<boolean>}
     */
    private _reachable;
    /** @private */
    private _cancelRetry;
    /**
     * @private
     * @param {boolean} [early] started by the probe, before the backoff step ran out
     */
    private _attempt;
    /** @private */
    private _emitParticipants;
}
export type Participant = import("./messages.js").Participant;
export type TrackInfo = import("./messages.js").TrackInfo;
export type Joined = import("./messages.js").Joined;
export type ServerMessage = import("./messages.js").ServerMessage;
/**
 * A token, or an async function that returns one (called again for each reconnect, so it can
 * fetch a fresh token from the application).
 */
export type TokenSource = string | (() => string | Promise<string>);
/**
 * Events of a SignalingClient (listen with `on(type, detail => ...)` or addEventListener; the
 * payload is the CustomEvent's detail). Every other server message type is dispatched too, with
 * the message as detail.
 */
export type SignalingEventMap = {
    /**
     * the live list, this client included
     */
    participants: Participant[];
    participant_joined: {
        participant: Participant;
    };
    participant_left: {
        participant_id: string;
        reason: string;
    };
    participant_connection: {
        participant_id: string;
        state: "connected" | "reconnecting";
    };
    track_published: {
        participant_id: string;
        track: TrackInfo;
    };
    track_unpublished: {
        participant_id: string;
        track: TrackInfo;
    };
    track_muted: {
        participant_id: string;
        track: TrackInfo;
    };
    /**
     * who speaks
     * now, loudest first (`level` in dBov, 0 the loudest); sent only when the list changes
     */
    active_speakers: {
        speakers: {
            participant_id: string;
            level: number;
        }[];
    };
    /**
     * dynacast: keep sending these
     * simulcast encodings (rids) of one of our tracks, pause the others
     */
    layers: {
        track_id: string;
        active: string[];
    };
    subscribe_offer: {
        sdp: string;
    };
    signal: {
        from: string;
        payload: unknown;
    };
    reconnect: {
        reason: string;
        retry_after_ms?: number;
    };
    error: {
        code: string;
        message: string;
        ref?: number | string;
    };
    /**
     * the connection dropped; the next
     * attempt starts in `delayMs` (or earlier, when the /healthz probe sees the server back)
     */
    reconnecting: {
        attempt: number;
        delayMs: number;
    };
    reconnected: {
        resumed: boolean;
        joined: Joined;
    };
    /**
     * final: no more reconnects
     */
    close: {
        code: number;
        reason: string;
    };
};
export type SignalingOptions = {
    /**
     * the reconnect delays (1 s doubling to 30 s, jittered)
     */
    backoff?: Backoff | undefined;
    /**
     * probe `GET /healthz` while the server is unreachable (true)
     */
    probe?: boolean | undefined;
};
import { Emitter } from "./emitter.js";
import { Backoff } from "./backoff.js";
