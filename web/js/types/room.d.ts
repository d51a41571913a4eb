/**
 * @typedef {import("./messages.js").Participant} Participant
 * @typedef {import("./messages.js").TrackInfo} TrackInfo
 * @typedef {import("./messages.js").Joined} Joined
 * @typedef {import("./messages.js").DataMessage} DataMessage
 * @typedef {import("./messages.js").DataSync} DataSync
 * @typedef {import("./signaling.js").TokenSource} TokenSource
 * @typedef {import("./signaling.js").SignalingEventMap} SignalingEventMap
 */
/**
 * Events of a RoomClient; the payload is the CustomEvent's detail.
 * @typedef {object} RoomEventMap
 * @property {Participant[]} participants the live list, this client included
 * @property {SignalingEventMap["participant_joined"]} participant_joined
 * @property {SignalingEventMap["participant_left"]} participant_left
 * @property {SignalingEventMap["participant_connection"]} participant_connection another
 *   participant's WebSocket dropped (`reconnecting`: its media keeps flowing, it may resume) or
 *   came back (`connected`)
 * @property {SignalingEventMap["track_published"]} track_published
 * @property {SignalingEventMap["track_unpublished"]} track_unpublished
 * @property {SignalingEventMap["track_muted"]} track_muted
 * @property {SignalingEventMap["active_speakers"]} active_speakers
 * @property {{participantId: string, track: MediaStreamTrack, stream: MediaStream}} track a
 *   remote track arrived; `stream` gathers all of that participant's tracks
 * @property {{participantId: string, trackId: string}} trackended a remote track is gone
 * @property {SignalingEventMap["reconnecting"]} reconnecting
 * @property {{resumed: boolean}} reconnected `resumed: false` follows a `reset`
 * @property {{}} reset a reconnect could not resume: new PeerConnections, remote media starts
 *   over (tracks arrive again), the local stream is published again; screen shares are not
 * @property {SignalingEventMap["close"]} close final
 * @property {DataMessage} data a relayed DataChannel message
 * @property {DataSync} datasync a replay of the room's persistent topics follows
 * @property {{code: string, message: string}} dataerror the relay refused something we sent
 */
/**
 * Size or quality a viewer wants of one remote video track; `paused` stops it.
 * @typedef {object} SubscriptionRequest
 * @property {number} [maxWidth] pixels (the rendered width of the tile)
 * @property {number} [maxHeight] pixels
 * @property {"low" | "medium" | "high"} [quality] instead of a size
 * @property {boolean} [paused] receive nothing (a hidden tile)
 */
/**
 * The simulcast encodings to send for a camera track: three layers (`q` 1/4, `h` 1/2, `f`
 * full size) from 360 lines up, two (`h`, `f`) from 240, else none (one stream).
 * @param {MediaStreamTrack} track
 * @returns {RTCRtpEncodingParameters[] | undefined}
 */
export function simulcastEncodings(track: MediaStreamTrack): RTCRtpEncodingParameters[] | undefined;
/**
 * A participant in an SFU room: join, publish local tracks, receive the others' tracks, send and
 * receive data, reconnect.
 * @extends {Emitter<RoomEventMap>}
 */
export class RoomClient extends Emitter<RoomEventMap> {
    /**
     * @param {string} [signalingUrl] ws(s)://host:port/ws (default: the page's own server)
     * @param {RoomClientOptions} [options]
     */
    constructor(signalingUrl?: string, { data, simulcast, signaling }?: RoomClientOptions);
    dataEnabled: boolean;
    simulcast: boolean;
    /**
     * Last `subscription` sent per remote track id (nothing is sent again unchanged).
     * @private
     * @type {Map<string, string>}
     */
    private _subscriptions;
    /**
     * One setParameters at a time per sender (dynacast `layers`).
     * @private
     * @type {Promise<void>}
     */
    private _layersQueue;
    /**
     * The sender of each published track, by the id the server knows it by (the track id at
     * publish time: a camera switched with replaceTrack keeps it).
     * @private
     * @type {Map<string, RTCRtpSender>}
     */
    private _senders;
    /** @type {Partial<Record<"reliable" | "lossy", RTCDataChannel>>} outgoing, on the publisher PC */
    dataChannels: Partial<Record<"reliable" | "lossy", RTCDataChannel>>;
    /** @private */
    private _outbox;
    /** @private */
    private _dataFlushQueued;
    signaling: SignalingClient;
    /** @type {RTCPeerConnection | null} sends our tracks and DataChannels */
    publisher: RTCPeerConnection | null;
    /** @type {RTCPeerConnection | null} receives the others' (the server offers it) */
    subscriber: RTCPeerConnection | null;
    /** @type {Map<string, MediaStream>} participant id -> their tracks */
    remoteStreams: Map<string, MediaStream>;
    /** @type {Set<string>} ids of others' tracks muted by their publisher */
    remoteMuted: Set<string>;
    /** @private */
    private _subscriberQueue;
    /**
     * @private
     * @type {Promise<void>}
     */
    private _publisherQueue;
    /** @type {MediaStream | null} */
    localStream: MediaStream | null;
    /**
     * Published after the first offer (screen shares).
     * @private
     * @type {Map<string, {track: MediaStreamTrack, stream: MediaStream}>}
     */
    private _extraTracks;
    stats: StatsReporter;
    /**
     * @private
     * @param {{resumed: boolean}} detail
     */
    private _onReconnected;
    /** This participant, once joined. */
    get self(): import("./messages.js").Participant | null;
    /** Everyone in the room by id, this client included. */
    get participants(): Map<string, import("./messages.js").Participant>;
    /**
     * Join a room: the WebSocket, the `join`, the subscriber PeerConnection (and the DataChannels
     * with `data: true`). Others' tracks then arrive as `track` events. Rejects with a
     * SignalingError (`unauthorized`, `forbidden`, `room_full`, ...) or an Error when unreachable.
     * @param {string} room
     * @param {TokenSource} token a JWT, or an async function returning one (used again on reconnect)
     * @param {string} [name] display name (overrides the token's)
     * @returns {Promise<Joined>}
     */
    join(room: string, token: TokenSource, name?: string): Promise<Joined>;
    /**
     * Publish the tracks of a local MediaStream (camera and microphone); kept, and published again
     * after a reconnect that could not resume.
     * @param {MediaStream} stream
     * @returns {Promise<void>}
     */
    publish(stream: MediaStream): Promise<void>;
    /**
     * Dynacast: the server says which simulcast encodings of a track someone receives; the
     * others stop being encoded and sent until it asks for them again.
     * @private
     * @param {string} trackId
     * @param {string[]} active rids
     */
    private _applyLayers;
    /**
     * Tell the server what this viewer wants of a remote video track: the size it is shown at
     * (the server picks the simulcast layer that covers it), a quality, or paused (not shown).
     * Nothing is sent when the request did not change.
     * @param {string} trackId the remote track's id
     * @param {SubscriptionRequest} request
     */
    setSubscription(trackId: string, { maxWidth, maxHeight, quality, paused }?: SubscriptionRequest): void;
    /**
     * Add one more track (a screen share) to a live call: a new transceiver and a renegotiation.
     * @param {MediaStreamTrack} track
     * @param {MediaStream} stream
     * @returns {Promise<void>}
     */
    publishTrack(track: MediaStreamTrack, stream: MediaStream): Promise<void>;
    /**
     * Stop sending a track added with publishTrack: its transceiver goes inactive (the m-line
     * stays, so a later share can reuse it), then renegotiate.
     * @param {MediaStreamTrack} track
     * @returns {Promise<void>}
     */
    unpublishTrack(track: MediaStreamTrack): Promise<void>;
    /**
     * Send `fresh` instead of `old` (another camera or microphone): no renegotiation needed.
     * Throws when `old` is not being sent.
     * @param {MediaStreamTrack} old
     * @param {MediaStreamTrack} fresh
     * @returns {Promise<void>}
     */
    replaceTrack(old: MediaStreamTrack, fresh: MediaStreamTrack): Promise<void>;
    /**
     * Send a DataChannel message to the room (or to the participant ids in `to`). `lossy` uses the
     * unordered, no-retransmit channel (cursors and such). Messages sent in the same task go as one
     * batch. Returns false when the message was dropped (too many waiting for the channel).
     * Throws a TypeError for an empty topic or a payload JSON cannot encode.
     * @param {string} topic
     * @param {unknown} payload any JSON value
     * @param {{to?: string[], lossy?: boolean}} [options]
     * @returns {boolean}
     */
    sendData(topic: string, payload: unknown, { to, lossy }?: {
        to?: string[];
        lossy?: boolean;
    }): boolean;
    /** @private */
    private _flushData;
    /** @private */
    private _openData;
    /**
     * @private
     * @returns {RTCPeerConnection}
     */
    private _publisherPc;
    /**
     * @private
     * @returns {Promise<void>}
     */
    private _offerPublisher;
    /** @private */
    private _negotiatePublisher;
    /**
     * Mute or unmute a local track: stop sending it and tell the room (`track_muted`).
     * @param {MediaStreamTrack} track
     * @param {boolean} muted
     */
    setMuted(track: MediaStreamTrack, muted: boolean): void;
    /** Leave the room for good: the others see us go at once. Local tracks are not stopped. */
    leave(): void;
    /** Close both PeerConnections (leave() does it too). */
    close(): void;
    /** @private */
    private _newSubscriber;
    /**
     * @private
     * @param {"publisher" | "subscriber"} role
     * @returns {RTCPeerConnection}
     */
    private _newPc;
    /**
     * @private
     * @param {string} sdp
     */
    private _answerSubscribeOffer;
    /**
     * @private
     * @param {RTCTrackEvent} event
     */
    private _onRemoteTrack;
}
export type Participant = import("./messages.js").Participant;
export type TrackInfo = import("./messages.js").TrackInfo;
export type Joined = import("./messages.js").Joined;
export type DataMessage = import("./messages.js").DataMessage;
export type DataSync = import("./messages.js").DataSync;
export type TokenSource = import("./signaling.js").TokenSource;
export type SignalingEventMap = import("./signaling.js").SignalingEventMap;
/**
 * Events of a RoomClient; the payload is the CustomEvent's detail.
 */
export type RoomEventMap = {
    /**
     * the live list, this client included
     */
    participants: Participant[];
    participant_joined: SignalingEventMap["participant_joined"];
    participant_left: SignalingEventMap["participant_left"];
    /**
     * another
     * participant's WebSocket dropped (`reconnecting`: its media keeps flowing, it may resume) or
     * came back (`connected`)
     */
    participant_connection: SignalingEventMap["participant_connection"];
    track_published: SignalingEventMap["track_published"];
    track_unpublished: SignalingEventMap["track_unpublished"];
    track_muted: SignalingEventMap["track_muted"];
    active_speakers: SignalingEventMap["active_speakers"];
    /**
     * a
     * remote track arrived; `stream` gathers all of that participant's tracks
     */
    track: {
        participantId: string;
        track: MediaStreamTrack;
        stream: MediaStream;
    };
    /**
     * a remote track is gone
     */
    trackended: {
        participantId: string;
        trackId: string;
    };
    reconnecting: SignalingEventMap["reconnecting"];
    /**
     * `resumed: false` follows a `reset`
     */
    reconnected: {
        resumed: boolean;
    };
    /**
     * a reconnect could not resume: new PeerConnections, remote media starts
     * over (tracks arrive again), the local stream is published again; screen shares are not
     */
    reset: {};
    /**
     * final
     */
    close: SignalingEventMap["close"];
    /**
     * a relayed DataChannel message
     */
    data: DataMessage;
    /**
     * a replay of the room's persistent topics follows
     */
    datasync: DataSync;
    /**
     * the relay refused something we sent
     */
    dataerror: {
        code: string;
        message: string;
    };
};
/**
 * Size or quality a viewer wants of one remote video track; `paused` stops it.
 */
export type SubscriptionRequest = {
    /**
     * pixels (the rendered width of the tile)
     */
    maxWidth?: number | undefined;
    /**
     * pixels
     */
    maxHeight?: number | undefined;
    /**
     * instead of a size
     */
    quality?: "high" | "low" | "medium" | undefined;
    /**
     * receive nothing (a hidden tile)
     */
    paused?: boolean | undefined;
};
export type RoomClientOptions = {
    /**
     * open the `reliable` and `lossy` DataChannels at join (false)
     */
    data?: boolean | undefined;
    /**
     * publish camera video as several encodings (`q`, `h`, `f`: a
     * quarter, half and full resolution) when the camera is large enough (true); the server
     * forwards each viewer the one it can use
     */
    simulcast?: boolean | undefined;
    /**
     * reconnect settings
     */
    signaling?: import("./signaling.js").SignalingOptions | undefined;
};
import { Emitter } from "./emitter.js";
import { SignalingClient } from "./signaling.js";
import { StatsReporter } from "./stats-reporter.js";
