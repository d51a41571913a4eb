// @ts-check
// relayroom room client: signaling plus the two PeerConnections of an SFU room.
// The client offers on its publisher PC; the server offers on the subscriber PC and
// renegotiates it whenever tracks come and go. Events (CustomEvent detail):
//   "participants" [participants], "track" {participantId, track, stream},
//   "trackended" {participantId, trackId}, "trackmuted" {participantId, track},
//   "participant_connection" {participant_id, state} (a peer's WebSocket dropped or came back),
//   "reconnecting" {attempt, delayMs}, "reconnected" {resumed}, "reset" (a reconnect that could
//   not resume: remote media starts over), "close" {code, reason}, and the raw message types.
// Data (new RoomClient(url, {data: true})): "data" {topic, payload, from, to, lossy} for each
// relayed DataChannel message, "datasync" {reason, count} before a replay of the room's
// persistent topics (reason "join", or "resync" after this client fell too far behind: reset
// persistent state), "dataerror" {code, message} when the relay refused something we sent.
// See docs/datachannels.md and docs/client.md.
import { DataOutbox, encodeDataMessage } from "./data-batch.js";
import { Emitter } from "./emitter.js";
import { parseDataFrame } from "./messages.js";
import { SignalingClient } from "./signaling.js";
import { StatsReporter } from "./stats-reporter.js";

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
export function simulcastEncodings(track) {
  if (track.kind !== "video") return undefined;
  const height = track.getSettings().height || 0;
  if (height >= 360) {
    return [
      { rid: "q", scaleResolutionDownBy: 4 },
      { rid: "h", scaleResolutionDownBy: 2 },
      { rid: "f", scaleResolutionDownBy: 1 },
    ];
  }
  if (height >= 240) {
    return [{ rid: "h", scaleResolutionDownBy: 2 }, { rid: "f", scaleResolutionDownBy: 1 }];
  }
  return undefined;
}

/**
 * @typedef {object} RoomClientOptions
 * @property {boolean} [data] open the `reliable` and `lossy` DataChannels at join (false)
 * @property {boolean} [simulcast] publish camera video as several encodings (`q`, `h`, `f`: a
 *   quarter, half and full resolution) when the camera is large enough (true); the server
 *   forwards each viewer the one it can use
 * @property {import("./signaling.js").SignalingOptions} [signaling] reconnect settings
 */

const DATA_LABELS = /** @type {const} */ (["reliable", "lossy"]);

/**
 * A participant in an SFU room: join, publish local tracks, receive the others' tracks, send and
 * receive data, reconnect.
 * @extends {Emitter<RoomEventMap>}
 */
export class RoomClient extends Emitter {
  /**
   * @param {string} [signalingUrl] ws(s)://host:port/ws (default: the page's own server)
   * @param {RoomClientOptions} [options]
   */
  constructor(signalingUrl, { data = false, simulcast = true, signaling } = {}) {
    super();
    this.dataEnabled = data;
    this.simulcast = simulcast;
    /**
     * Last `subscription` sent per remote track id (nothing is sent again unchanged).
     * @private
     * @type {Map<string, string>}
     */
    this._subscriptions = new Map();
    /**
     * One setParameters at a time per sender (dynacast `layers`).
     * @private
     * @type {Promise<void>}
     */
    this._layersQueue = Promise.resolve();
    /**
     * The sender of each published track, by the id the server knows it by (the track id at
     * publish time: a camera switched with replaceTrack keeps it).
     * @private
     * @type {Map<string, RTCRtpSender>}
     */
    this._senders = new Map();
    /** @type {Partial<Record<"reliable" | "lossy", RTCDataChannel>>} outgoing, on the publisher PC */
    this.dataChannels = {};
    /** @private */
    this._outbox = new DataOutbox();
    /** @private */
    this._dataFlushQueued = false;
    this.signaling = new SignalingClient(signalingUrl, signaling);
    /** @type {RTCPeerConnection | null} sends our tracks and DataChannels */
    this.publisher = null;
    /** @type {RTCPeerConnection | null} receives the others' (the server offers it) */
    this.subscriber = null;
    /** @type {Map<string, MediaStream>} participant id -> their tracks */
    this.remoteStreams = new Map();
    /** @type {Set<string>} ids of others' tracks muted by their publisher */
    this.remoteMuted = new Set();
    /** @private */
    this._subscriberQueue = Promise.resolve();
    /**
     * @private
     * @type {Promise<void>}
     */
    this._publisherQueue = Promise.resolve();
    /** @type {MediaStream | null} */
    this.localStream = null;
    /**
     * Published after the first offer (screen shares).
     * @private
     * @type {Map<string, {track: MediaStreamTrack, stream: MediaStream}>}
     */
    this._extraTracks = new Map();
    this.stats = new StatsReporter(this); // getStats() summary to the server every 2 s
    const forwarded = /** @type {const} */ (["participants", "close", "participant_joined",
      "participant_left", "track_published", "track_unpublished", "track_muted", "reconnecting",
      "participant_connection", "active_speakers"]);
    for (const type of forwarded) {
      this.signaling.on(type, (detail) => this.emit(type, /** @type {any} */ (detail)));
    }
    this.signaling.on("layers", ({ track_id, active }) => {
      this._layersQueue = this._layersQueue
        .then(() => this._applyLayers(track_id, active))
        .catch((error) => console.warn("pausing simulcast layers failed", error));
    });
    this.signaling.on("subscribe_offer", ({ sdp }) => {
      // One negotiation at a time, in arrival order.
      this._subscriberQueue = this._subscriberQueue
        .then(() => this._answerSubscribeOffer(sdp))
        .catch((error) => console.error("subscriber negotiation failed", error));
    });
    this.signaling.on("participant_left", ({ participant_id }) => {
      this.remoteStreams.delete(participant_id);
    });
    for (const type of /** @type {const} */ (["track_published", "track_muted", "track_unpublished"])) {
      this.signaling.on(type, ({ track }) => {
        if (track?.muted && type !== "track_unpublished") this.remoteMuted.add(track.id);
        else if (track) this.remoteMuted.delete(track.id);
      });
    }
    this.signaling.on("reconnected", (detail) => this._onReconnected(detail));
    this.signaling.on("error", (detail) => {
      if (detail.ref === undefined) this.emit("dataerror", { code: detail.code, message: detail.message });
    });
  }

  /**
   * @private
   * @param {{resumed: boolean}} detail
   */
  async _onReconnected({ resumed }) {
    if (!resumed) {
      // A new participant on the server: new PeerConnections, publish again.
      this.close();
      this.remoteStreams.clear();
      this._subscriptions.clear();
      this.emit("reset", {});
      this._newSubscriber();
      if (this.dataEnabled) await this._openData();
      if (this.localStream) await this.publish(this.localStream);
      this._extraTracks.clear(); // the page stops its screen share on "reset"
    }
    this.emit("reconnected", { resumed });
  }

  /** This participant, once joined. */
  get self() {
    return this.signaling.self;
  }

  /** Everyone in the room by id, this client included. */
  get participants() {
    return this.signaling.participants;
  }

  /**
   * Join a room: the WebSocket, the `join`, the subscriber PeerConnection (and the DataChannels
   * with `data: true`). Others' tracks then arrive as `track` events. Rejects with a
   * SignalingError (`unauthorized`, `forbidden`, `room_full`, ...) or an Error when unreachable.
   * @param {string} room
   * @param {TokenSource} token a JWT, or an async function returning one (used again on reconnect)
   * @param {string} [name] display name (overrides the token's)
   * @returns {Promise<Joined>}
   */
  async join(room, token, name) {
    const joined = await this.signaling.join(room, token, name);
    for (const { track } of joined.tracks || []) if (track.muted) this.remoteMuted.add(track.id);
    this._newSubscriber();
    if (this.dataEnabled) await this._openData();
    this.stats.start();
    return joined;
  }

  /**
   * Publish the tracks of a local MediaStream (camera and microphone); kept, and published again
   * after a reconnect that could not resume.
   * @param {MediaStream} stream
   * @returns {Promise<void>}
   */
  async publish(stream) {
    const pc = this._publisherPc();
    this.localStream = stream;
    // With data on, the publisher PC already carries the DataChannels: renegotiate it.
    for (const track of stream.getTracks()) {
      const sendEncodings = this.simulcast ? simulcastEncodings(track) : undefined;
      const transceiver = pc.addTransceiver(track, {
        direction: "sendonly", streams: [stream], ...(sendEncodings ? { sendEncodings } : {}),
      });
      this._senders.set(track.id, transceiver.sender);
    }
    await this._offerPublisher();
  }

  /**
   * Dynacast: the server says which simulcast encodings of a track someone receives; the
   * others stop being encoded and sent until it asks for them again.
   * @private
   * @param {string} trackId
   * @param {string[]} active rids
   */
  async _applyLayers(trackId, active) {
    const sender = this._senders.get(trackId)
      ?? this.publisher?.getSenders().find((s) => s.track?.id === trackId);
    if (!sender || sender.transport?.state === "closed") return;
    const parameters = sender.getParameters();
    let changed = false;
    for (const encoding of parameters.encodings || []) {
      if (!encoding.rid) continue;
      const on = active.includes(encoding.rid);
      if (encoding.active !== on) {
        encoding.active = on;
        changed = true;
      }
    }
    if (changed) await sender.setParameters(parameters);
  }

  /**
   * Tell the server what this viewer wants of a remote video track: the size it is shown at
   * (the server picks the simulcast layer that covers it), a quality, or paused (not shown).
   * Nothing is sent when the request did not change.
   * @param {string} trackId the remote track's id
   * @param {SubscriptionRequest} request
   */
  setSubscription(trackId, { maxWidth, maxHeight, quality, paused } = {}) {
    /** @type {{type: string, [field: string]: unknown}} */
    const message = { type: "subscription", track_id: trackId };
    if (paused) message.paused = true;
    else if (quality) message.quality = quality;
    else {
      if (maxWidth) message.max_width = Math.min(16384, Math.max(1, Math.round(maxWidth)));
      if (maxHeight) message.max_height = Math.min(16384, Math.max(1, Math.round(maxHeight)));
    }
    const key = JSON.stringify(message);
    if (this._subscriptions.get(trackId) === key) return;
    this._subscriptions.set(trackId, key);
    this.signaling.send(message);
  }

  /**
   * Add one more track (a screen share) to a live call: a new transceiver and a renegotiation.
   * @param {MediaStreamTrack} track
   * @param {MediaStream} stream
   * @returns {Promise<void>}
   */
  async publishTrack(track, stream) {
    const pc = this._publisherPc();
    // Reuse a transceiver left inactive by unpublishTrack, else add one.
    const idle = pc.getTransceivers().find((t) => t.direction === "inactive"
      && t.currentDirection !== "stopped" && t.receiver.track.kind === track.kind);
    if (idle) {
      await idle.sender.replaceTrack(track);
      idle.sender.setStreams(stream);
      idle.direction = "sendonly";
    } else {
      pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
    }
    this._extraTracks.set(track.id, { track, stream });
    await this._offerPublisher();
  }

  /**
   * Stop sending a track added with publishTrack: its transceiver goes inactive (the m-line
   * stays, so a later share can reuse it), then renegotiate.
   * @param {MediaStreamTrack} track
   * @returns {Promise<void>}
   */
  async unpublishTrack(track) {
    this._extraTracks.delete(track.id);
    const transceiver = this.publisher?.getTransceivers().find((t) => t.sender.track === track);
    if (!transceiver) return;
    await transceiver.sender.replaceTrack(null);
    transceiver.direction = "inactive";
    await this._offerPublisher();
  }

  /**
   * Send `fresh` instead of `old` (another camera or microphone): no renegotiation needed.
   * Throws when `old` is not being sent.
   * @param {MediaStreamTrack} old
   * @param {MediaStreamTrack} fresh
   * @returns {Promise<void>}
   */
  async replaceTrack(old, fresh) {
    const sender = this.publisher?.getSenders().find((s) => s.track === old);
    if (!sender) throw new Error("that track is not being sent");
    await sender.replaceTrack(fresh);
  }

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
  sendData(topic, payload, { to, lossy = false } = {}) {
    if (!this._outbox.push(lossy ? "lossy" : "reliable", encodeDataMessage(topic, payload, to))) {
      return false;
    }
    if (!this._dataFlushQueued) {
      this._dataFlushQueued = true;
      queueMicrotask(() => this._flushData());
    }
    return true;
  }

  /** @private */
  _flushData() {
    this._dataFlushQueued = false;
    for (const label of DATA_LABELS) {
      const channel = this.dataChannels[label];
      if (!channel || channel.readyState !== "open") continue;
      for (const frame of this._outbox.drain(label)) channel.send(frame);
    }
  }

  /** @private */
  async _openData() {
    const pc = this._publisherPc();
    const channels = {
      reliable: pc.createDataChannel("reliable", { ordered: true }),
      lossy: pc.createDataChannel("lossy", { ordered: false, maxRetransmits: 0 }),
    };
    this.dataChannels = channels;
    for (const channel of Object.values(channels)) {
      channel.onopen = () => this._flushData();
    }
    await this._offerPublisher();
  }

  /**
   * @private
   * @returns {RTCPeerConnection}
   */
  _publisherPc() {
    if (!this.publisher) this.publisher = this._newPc("publisher");
    return this.publisher;
  }

  /**
   * @private
   * @returns {Promise<void>}
   */
  _offerPublisher() {
    // One publisher negotiation at a time: a screen share started mid-offer waits its turn.
    const run = this._publisherQueue.then(() => this._negotiatePublisher());
    this._publisherQueue = run.catch(() => {});
    return run;
  }

  /** @private */
  async _negotiatePublisher() {
    const pc = this.publisher;
    if (!pc) return;
    await pc.setLocalDescription(await pc.createOffer());
    const reply = await this.signaling.request({
      type: "publish_offer",
      sdp: pc.localDescription?.sdp,
    });
    await pc.setRemoteDescription({ type: "answer", sdp: reply.sdp });
  }

  /**
   * Mute or unmute a local track: stop sending it and tell the room (`track_muted`).
   * @param {MediaStreamTrack} track
   * @param {boolean} muted
   */
  setMuted(track, muted) {
    track.enabled = !muted;
    this.signaling.send({ type: "mute", track_id: track.id, muted });
  }

  /** Leave the room for good: the others see us go at once. Local tracks are not stopped. */
  leave() {
    this.stats.stop();
    this.signaling.leave();
    this.localStream = null;
    this.close();
  }

  /** Close both PeerConnections (leave() does it too). */
  close() {
    this.publisher?.close();
    this.subscriber?.close();
    this.publisher = this.subscriber = null;
    this.dataChannels = {};
    this._senders.clear();
  }

  /** @private */
  _newSubscriber() {
    const pc = this._newPc("subscriber");
    this.subscriber = pc;
    pc.ontrack = (event) => this._onRemoteTrack(event);
    pc.ondatachannel = (event) => {
      const channel = event.channel;
      const lossy = channel.label === "lossy";
      channel.onmessage = (e) => {
        if (typeof e.data !== "string") return;
        for (const { type, detail } of parseDataFrame(e.data, lossy)) {
          if (type === "data") this.emit("data", detail);
          else this.emit("datasync", detail);
        }
      };
    };
  }

  /**
   * @private
   * @param {"publisher" | "subscriber"} role
   * @returns {RTCPeerConnection}
   */
  _newPc(role) {
    const pc = new RTCPeerConnection({ iceServers: this.signaling.iceServers });
    pc.onicecandidate = (event) => {
      if (event.candidate) {
        this.signaling.send({ type: "candidate", pc: role, candidate: event.candidate.toJSON() });
      }
    };
    return pc;
  }

  /**
   * @private
   * @param {string} sdp
   */
  async _answerSubscribeOffer(sdp) {
    const pc = this.subscriber;
    if (!pc) return;
    await pc.setRemoteDescription({ type: "offer", sdp });
    await pc.setLocalDescription(await pc.createAnswer());
    this.signaling.send({ type: "subscribe_answer", sdp: pc.localDescription?.sdp });
  }

  /**
   * @private
   * @param {RTCTrackEvent} event
   */
  _onRemoteTrack(event) {
    // The server labels each forwarded track with its publisher: msid "<participant id> <track id>".
    const participantId = event.streams[0]?.id ?? "";
    let stream = this.remoteStreams.get(participantId);
    if (!stream) {
      stream = new MediaStream();
      this.remoteStreams.set(participantId, stream);
    }
    stream.addTrack(event.track);
    const trackId = event.track.id;
    event.track.addEventListener("ended", () => {
      stream.removeTrack(event.track);
      this._subscriptions.delete(trackId);
      this.emit("trackended", { participantId, trackId });
    });
    event.streams[0]?.addEventListener("removetrack", (e) => {
      if (e.track === event.track) {
        stream.removeTrack(event.track);
        this.emit("trackended", { participantId, trackId });
      }
    });
    this.emit("track", { participantId, track: event.track, stream });
  }
}
