// @ts-check
// Browser-side stats: summarise the room's PeerConnections' getStats() and send the summary to
// the server as a `stats` message, so the dashboard shows both ends of each connection.
// Fields (all optional): rtt_ms, publisher_rtt_ms, subscriber_rtt_ms, candidate_type,
// publisher_candidate_type, subscriber_candidate_type, fps, width, height, frames_decoded,
// frames_dropped, jitter_ms, jitter_buffer_delay_ms, loss, packets_lost, packets_received,
// bitrate_in_bps, bitrate_out_bps, fps_sent, width_sent, height_sent, quality_limitation,
// tracks [{track_id, kind, direction, fps, active, width, height, frames_decoded, jitter_ms,
// jitter_buffer_delay_ms, packets_lost, packets_received, bitrate_bps}].
// `fps` is the lowest of the received videos that should be playing (`active`): not those muted
// by their publisher, nor those of participants who left.

const MAX_TRACKS = 16;

/**
 * @param {number | undefined | null} value
 * @param {number} [digits]
 * @returns {number | undefined}
 */
function round(value, digits = 1) {
  if (value === undefined || value === null || !Number.isFinite(value)) return undefined;
  const k = 10 ** digits;
  return Math.round(value * k) / k;
}

/**
 * The selected candidate pair of a report: {rtt_ms, candidate_type}.
 * @param {RTCStatsReport} report
 * @returns {{rtt_ms?: number, candidate_type?: string}}
 */
export function selectedPair(report) {
  let pair = null;
  for (const stat of report.values()) {
    if (stat.type === "transport" && stat.selectedCandidatePairId) {
      pair = report.get(stat.selectedCandidatePairId);
      break;
    }
  }
  if (!pair) {
    for (const stat of report.values()) {
      if (stat.type === "candidate-pair" && stat.nominated && stat.state === "succeeded") {
        pair = stat;
        break;
      }
    }
  }
  if (!pair) return {};
  const local = report.get(pair.localCandidateId);
  const remote = report.get(pair.remoteCandidateId);
  /** @type {string[]} */
  const types = [local?.candidateType, remote?.candidateType].filter(Boolean);
  /** @type {Record<string, number>} */
  const rank = { host: 0, prflx: 1, srflx: 2, relay: 3 };
  types.sort((a, b) => (rank[b] ?? 0) - (rank[a] ?? 0));
  return {
    rtt_ms: round(pair.currentRoundTripTime !== undefined ? pair.currentRoundTripTime * 1000 : undefined),
    candidate_type: types[0],
  };
}

/**
 * What the reporter needs of a room client: its PeerConnections, the others' muted track ids and
 * a way to send.
 * @typedef {object} StatsSource
 * @property {RTCPeerConnection | null} publisher
 * @property {RTCPeerConnection | null} subscriber
 * @property {Set<string>} remoteMuted
 * @property {{send(message: {type: string, [field: string]: unknown}): boolean}} signaling
 */

/** Summarises getStats() of a room's PeerConnections and sends it every `intervalMs`. */
export class StatsReporter {
  /**
   * @param {StatsSource} room
   * @param {{intervalMs?: number}} [options]
   */
  constructor(room, { intervalMs = 2000 } = {}) {
    this.room = room;
    this.intervalMs = intervalMs;
    /**
     * @private
     * @type {ReturnType<typeof setInterval> | null}
     */
    this._timer = null;
    /**
     * stat id -> {bytes, t}, "id/loss" -> {lost, received}
     * @private
     * @type {Map<string, any>}
     */
    this._previous = new Map();
    /** @type {Record<string, any> | null} the last report sent */
    this.last = null;
  }

  start() {
    if (this._timer) return;
    this._timer = setInterval(() => this.send().catch((e) => console.debug("stats", e)), this.intervalMs);
  }

  stop() {
    if (this._timer !== null) clearInterval(this._timer);
    this._timer = null;
  }

  /** @returns {Promise<Record<string, any>>} */
  async send() {
    const report = await this.collect();
    this.last = report;
    this.room.signaling.send({ type: "stats", report });
    return report;
  }

  /**
   * @private
   * @param {string} id
   * @param {number} bytes
   * @param {number} now
   * @returns {number | undefined}
   */
  _rate(id, bytes, now) {
    const before = this._previous.get(id);
    this._previous.set(id, { bytes, t: now });
    if (!before || bytes < before.bytes || now <= before.t) return undefined;
    return ((bytes - before.bytes) * 8 * 1000) / (now - before.t);
  }

  /**
   * Ids of the remote tracks that should be playing: negotiated to receive, live, not muted.
   * @returns {Set<string>}
   */
  receivingTrackIds() {
    /** @type {Set<string>} */
    const ids = new Set();
    const pc = this.room.subscriber;
    if (!pc || pc.connectionState === "closed") return ids;
    for (const transceiver of pc.getTransceivers()) {
      const direction = transceiver.currentDirection;
      if (direction !== "recvonly" && direction !== "sendrecv") continue;
      const track = transceiver.receiver.track;
      if (track.readyState !== "live" || this.room.remoteMuted?.has(track.id)) continue;
      ids.add(track.id);
    }
    return ids;
  }

  /** @returns {Promise<Record<string, any>>} */
  async collect() {
    const now = performance.now();
    /** @type {Record<string, any>} */
    const out = { ts: Date.now() };
    /** @type {Record<string, any>[]} */
    const tracks = [];
    let lostDelta = 0;
    let receivedDelta = 0;
    let bitrateIn = 0;
    let bitrateOut = 0;
    /** @type {number[]} */
    const fpsIn = [];
    /** @type {number[]} */
    const jitters = [];
    /** @type {number[]} */
    const delays = [];
    let framesDecoded = 0;
    let framesDropped = 0;
    /** @type {{width: number, height: number} | null} */
    let best = null;
    const receiving = this.receivingTrackIds();
    /** @type {[string, RTCPeerConnection | null][]} */
    const pcs = [["publisher", this.room.publisher], ["subscriber", this.room.subscriber]];
    for (const [role, pc] of pcs) {
      if (!pc || pc.connectionState === "closed") continue;
      const report = await pc.getStats();
      const pair = selectedPair(report);
      if (pair.rtt_ms !== undefined) out[`${role}_rtt_ms`] = pair.rtt_ms;
      if (pair.candidate_type) out[`${role}_candidate_type`] = pair.candidate_type;
      for (const stat of report.values()) {
        if (stat.type === "inbound-rtp") {
          const rate = this._rate(stat.id, stat.bytesReceived ?? 0, now);
          bitrateIn += rate ?? 0;
          const prev = this._previous.get(`${stat.id}/loss`) ?? { lost: 0, received: 0 };
          const lost = stat.packetsLost ?? 0;
          const received = stat.packetsReceived ?? 0;
          lostDelta += Math.max(0, lost - prev.lost);
          receivedDelta += Math.max(0, received - prev.received);
          this._previous.set(`${stat.id}/loss`, { lost, received });
          const jitterMs = stat.jitter !== undefined ? stat.jitter * 1000 : undefined;
          if (jitterMs !== undefined) jitters.push(jitterMs);
          const delayMs = stat.jitterBufferEmittedCount
            ? (stat.jitterBufferDelay / stat.jitterBufferEmittedCount) * 1000 : undefined;
          if (delayMs !== undefined) delays.push(delayMs);
          /** @type {Record<string, any>} */
          const track = {
            track_id: stat.trackIdentifier, kind: stat.kind, direction: "in",
            packets_lost: lost, packets_received: received, bitrate_bps: round(rate, 0),
            jitter_ms: round(jitterMs), jitter_buffer_delay_ms: round(delayMs),
          };
          if (stat.kind === "video") {
            track.fps = round(stat.framesPerSecond ?? 0);
            track.active = receiving.has(stat.trackIdentifier);
            track.width = stat.frameWidth;
            track.height = stat.frameHeight;
            track.frames_decoded = stat.framesDecoded;
            track.frames_dropped = stat.framesDropped;
            // Only videos that should be playing count: a track its publisher muted, or one
            // left behind by someone who left (an inactive transceiver), decodes 0 fps by design
            // and is no alarm about this receiver.
            if (track.active) fpsIn.push(track.fps);
            framesDecoded += stat.framesDecoded ?? 0;
            framesDropped += stat.framesDropped ?? 0;
            if (stat.frameWidth && (!best || stat.frameWidth * stat.frameHeight > best.width * best.height)) {
              best = { width: stat.frameWidth, height: stat.frameHeight };
            }
          }
          tracks.push(track);
        } else if (stat.type === "outbound-rtp") {
          const rate = this._rate(stat.id, stat.bytesSent ?? 0, now);
          bitrateOut += rate ?? 0;
          if (stat.kind === "video") {
            out.fps_sent = round(stat.framesPerSecond);
            out.width_sent = stat.frameWidth;
            out.height_sent = stat.frameHeight;
            out.quality_limitation = stat.qualityLimitationReason;
          }
          tracks.push({ track_id: stat.mid, kind: stat.kind, direction: "out", bitrate_bps: round(rate, 0) });
        }
      }
    }
    const rtts = [out.publisher_rtt_ms, out.subscriber_rtt_ms].filter((v) => v !== undefined);
    if (rtts.length) out.rtt_ms = Math.max(...rtts);
    out.candidate_type = out.subscriber_candidate_type ?? out.publisher_candidate_type;
    if (fpsIn.length) out.fps = Math.min(...fpsIn);
    if (best) Object.assign(out, best);
    if (framesDecoded) out.frames_decoded = framesDecoded;
    if (framesDropped) out.frames_dropped = framesDropped;
    if (jitters.length) out.jitter_ms = round(Math.max(...jitters));
    if (delays.length) out.jitter_buffer_delay_ms = round(delays.reduce((a, b) => a + b, 0) / delays.length);
    if (lostDelta + receivedDelta > 0) out.loss = round(lostDelta / (lostDelta + receivedDelta), 4);
    out.bitrate_in_bps = round(bitrateIn, 0);
    out.bitrate_out_bps = round(bitrateOut, 0);
    out.tracks = tracks.slice(0, MAX_TRACKS);
    for (const key of Object.keys(out)) if (out[key] === undefined) delete out[key];
    return out;
  }
}
