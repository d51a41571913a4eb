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
// See docs/datachannels.md.
import { SignalingClient } from "./signaling.js";
import { StatsReporter } from "./stats-reporter.js";

const DATA_LABELS = ["reliable", "lossy"];
const DATA_QUEUE_MAX = 1000; // messages kept while the channels open
const DATA_BATCH_MAX_BYTES = 1100; // one SCTP chunk: the relay's cost is per packet

export class RoomClient extends EventTarget {
  constructor(signalingUrl, { data = false } = {}) {
    super();
    this.dataEnabled = data;
    this.dataChannels = {}; // label -> RTCDataChannel (publisher PC, outgoing)
    this._dataPending = { reliable: [], lossy: [] };
    this._dataFlushQueued = false;
    this.signaling = new SignalingClient(signalingUrl);
    this.publisher = null;
    this.subscriber = null;
    this.remoteStreams = new Map(); // participant id -> MediaStream
    this.remoteMuted = new Set(); // ids of others' tracks muted by their publisher
    this._subscriberQueue = Promise.resolve();
    this._publisherQueue = Promise.resolve();
    this.localStream = null;
    this._extraTracks = new Map(); // track id -> {track, stream}: published after the first offer
    this.stats = new StatsReporter(this); // getStats() summary to the server every 2 s
    for (const type of ["participants", "close", "participant_joined", "participant_left",
      "track_published", "track_unpublished", "track_muted", "reconnecting",
      "participant_connection"]) {
      this.signaling.addEventListener(type, (e) => this._forward(type, e.detail));
    }
    this.signaling.addEventListener("subscribe_offer", (e) => {
      // One negotiation at a time, in arrival order.
      this._subscriberQueue = this._subscriberQueue
        .then(() => this._answerSubscribeOffer(e.detail.sdp))
        .catch((error) => console.error("subscriber negotiation failed", error));
    });
    this.signaling.addEventListener("participant_left", (e) => {
      this.remoteStreams.delete(e.detail.participant_id);
    });
    for (const type of ["track_published", "track_muted", "track_unpublished"]) {
      this.signaling.addEventListener(type, (e) => {
        const track = e.detail.track;
        if (track?.muted && type !== "track_unpublished") this.remoteMuted.add(track.id);
        else if (track) this.remoteMuted.delete(track.id);
      });
    }
    this.signaling.addEventListener("reconnected", (e) => this._onReconnected(e.detail));
    this.signaling.addEventListener("error", (e) => {
      if (e.detail.ref === undefined) this._forward("dataerror", e.detail);
    });
  }

  async _onReconnected({ resumed }) {
    if (!resumed) {
      // A new participant on the server: new PeerConnections, publish again.
      this.close();
      this.remoteStreams.clear();
      this._forward("reset", {});
      this._newSubscriber();
      if (this.dataEnabled) await this._openData();
      if (this.localStream) await this.publish(this.localStream);
      this._extraTracks.clear(); // the page stops its screen share on "reset"
    }
    this._forward("reconnected", { resumed });
  }

  get self() {
    return this.signaling.self;
  }

  get participants() {
    return this.signaling.participants;
  }

  async join(room, token, name) {
    const joined = await this.signaling.join(room, token, name);
    for (const { track } of joined.tracks || []) if (track.muted) this.remoteMuted.add(track.id);
    this._newSubscriber();
    if (this.dataEnabled) await this._openData();
    this.stats.start();
    return joined;
  }

  /** Publish the tracks of a local MediaStream (camera and microphone). */
  async publish(stream) {
    this.localStream = stream;
    // With data on, the publisher PC already carries the DataChannels: renegotiate it.
    if (!this.publisher) this.publisher = this._newPc("publisher");
    for (const track of stream.getTracks()) {
      this.publisher.addTransceiver(track, { direction: "sendonly", streams: [stream] });
    }
    await this._offerPublisher();
  }

  /** Add one more track (a screen share) to a live call: a new transceiver and a renegotiation. */
  async publishTrack(track, stream) {
    if (!this.publisher) this.publisher = this._newPc("publisher");
    // Reuse a transceiver left inactive by unpublishTrack, else add one.
    const idle = this.publisher.getTransceivers().find((t) => t.direction === "inactive"
      && !t.stopped && t.receiver.track.kind === track.kind);
    if (idle) {
      await idle.sender.replaceTrack(track);
      idle.sender.setStreams(stream);
      idle.direction = "sendonly";
    } else {
      this.publisher.addTransceiver(track, { direction: "sendonly", streams: [stream] });
    }
    this._extraTracks.set(track.id, { track, stream });
    await this._offerPublisher();
  }

  /**
   * Stop sending a track added with publishTrack: its transceiver goes inactive (the m-line
   * stays, so a later share can reuse it), then renegotiate.
   */
  async unpublishTrack(track) {
    this._extraTracks.delete(track.id);
    const transceiver = this.publisher?.getTransceivers().find((t) => t.sender.track === track);
    if (!transceiver) return;
    await transceiver.sender.replaceTrack(null);
    transceiver.direction = "inactive";
    await this._offerPublisher();
  }

  /** Send `fresh` instead of `old` (another camera or microphone): no renegotiation needed. */
  async replaceTrack(old, fresh) {
    const sender = this.publisher?.getSenders().find((s) => s.track === old);
    if (!sender) throw new Error("that track is not being sent");
    await sender.replaceTrack(fresh);
  }

  /**
   * Send a DataChannel message to the room (or to the participant ids in `to`). `lossy` uses the
   * unordered, no-retransmit channel (cursors and such). Messages sent in the same task go as one
   * batch. Returns false when the message was dropped (too many waiting for the channel).
   */
  sendData(topic, payload, { to, lossy = false } = {}) {
    const message = { topic, payload };
    if (to) message.to = to;
    const pending = this._dataPending[lossy ? "lossy" : "reliable"];
    if (pending.length >= DATA_QUEUE_MAX) return false;
    pending.push(JSON.stringify(message));
    if (!this._dataFlushQueued) {
      this._dataFlushQueued = true;
      queueMicrotask(() => this._flushData());
    }
    return true;
  }

  _flushData() {
    this._dataFlushQueued = false;
    for (const label of DATA_LABELS) {
      const channel = this.dataChannels[label];
      const pending = this._dataPending[label];
      if (!channel || channel.readyState !== "open" || !pending.length) continue;
      while (pending.length) {
        const batch = [pending.shift()];
        let size = batch[0].length;
        while (pending.length && size + pending[0].length + 1 <= DATA_BATCH_MAX_BYTES) {
          size += pending[0].length + 1;
          batch.push(pending.shift());
        }
        channel.send(batch.length === 1 ? batch[0] : `[${batch.join(",")}]`);
      }
    }
  }

  async _openData() {
    if (!this.publisher) this.publisher = this._newPc("publisher");
    this.dataChannels = {
      reliable: this.publisher.createDataChannel("reliable", { ordered: true }),
      lossy: this.publisher.createDataChannel("lossy", { ordered: false, maxRetransmits: 0 }),
    };
    for (const channel of Object.values(this.dataChannels)) {
      channel.onopen = () => this._flushData();
    }
    await this._offerPublisher();
  }

  _offerPublisher() {
    // One publisher negotiation at a time: a screen share started mid-offer waits its turn.
    const run = this._publisherQueue.then(() => this._negotiatePublisher());
    this._publisherQueue = run.catch(() => {});
    return run;
  }

  async _negotiatePublisher() {
    if (!this.publisher) return;
    await this.publisher.setLocalDescription(await this.publisher.createOffer());
    const reply = await this.signaling.request({
      type: "publish_offer",
      sdp: this.publisher.localDescription.sdp,
    });
    await this.publisher.setRemoteDescription({ type: "answer", sdp: reply.sdp });
  }

  /** Mute or unmute a local track: stop sending it and tell the room. */
  setMuted(track, muted) {
    track.enabled = !muted;
    this.signaling.send({ type: "mute", track_id: track.id, muted });
  }

  leave() {
    this.stats.stop();
    this.signaling.leave();
    this.localStream = null;
    this.close();
  }

  close() {
    this.publisher?.close();
    this.subscriber?.close();
    this.publisher = this.subscriber = null;
    this.dataChannels = {};
  }

  _newSubscriber() {
    this.subscriber = this._newPc("subscriber");
    this.subscriber.ontrack = (event) => this._onRemoteTrack(event);
    this.subscriber.ondatachannel = (event) => {
      const channel = event.channel;
      const lossy = channel.label === "lossy";
      channel.onmessage = (e) => this._onData(e.data, lossy);
    };
  }

  _onData(text, lossy) {
    let value;
    try {
      value = JSON.parse(text);
    } catch {
      return;
    }
    for (const m of Array.isArray(value) ? value : [value]) {
      if (!m || typeof m !== "object") continue;
      if (m.topic === "relay") {
        if (m.payload?.op === "sync") this._forward("datasync", m.payload);
        continue;
      }
      this._forward("data", { topic: m.topic, payload: m.payload, from: m.from, to: m.to, lossy });
    }
  }

  _newPc(role) {
    const pc = new RTCPeerConnection({ iceServers: this.signaling.iceServers });
    pc.onicecandidate = (event) => {
      if (event.candidate) {
        this.signaling.send({ type: "candidate", pc: role, candidate: event.candidate.toJSON() });
      }
    };
    return pc;
  }

  async _answerSubscribeOffer(sdp) {
    const pc = this.subscriber;
    if (!pc) return;
    await pc.setRemoteDescription({ type: "offer", sdp });
    await pc.setLocalDescription(await pc.createAnswer());
    this.signaling.send({ type: "subscribe_answer", sdp: pc.localDescription.sdp });
  }

  _onRemoteTrack(event) {
    // The server labels each forwarded track with its publisher: msid "<participant id> <track id>".
    const participantId = event.streams[0]?.id;
    let stream = this.remoteStreams.get(participantId);
    if (!stream) {
      stream = new MediaStream();
      this.remoteStreams.set(participantId, stream);
    }
    stream.addTrack(event.track);
    const trackId = event.track.id;
    event.track.addEventListener("ended", () => {
      stream.removeTrack(event.track);
      this._forward("trackended", { participantId, trackId });
    });
    event.streams[0]?.addEventListener("removetrack", (e) => {
      if (e.track === event.track) {
        stream.removeTrack(event.track);
        this._forward("trackended", { participantId, trackId });
      }
    });
    this._forward("track", { participantId, track: event.track, stream });
  }

  _forward(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
