/**
 * The selected candidate pair of a report: {rtt_ms, candidate_type}.
 * @param {RTCStatsReport} report
 * @returns {{rtt_ms?: number, candidate_type?: string}}
 */
export function selectedPair(report: RTCStatsReport): {
    rtt_ms?: number;
    candidate_type?: string;
};
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
    constructor(room: StatsSource, { intervalMs }?: {
        intervalMs?: number;
    });
    room: StatsSource;
    intervalMs: number;
    /**
     * @private
     * @type {ReturnType<typeof setInterval> | null}
     */
    private _timer;
    /**
     * stat id -> {bytes, t}, "id/loss" -> {lost, received}
     * @private
     * @type {Map<string, any>}
     */
    private _previous;
    /** @type {Record<string, any> | null} the last report sent */
    last: Record<string, any> | null;
    start(): void;
    stop(): void;
    /** @returns {Promise<Record<string, any>>} */
    send(): Promise<Record<string, any>>;
    /**
     * @private
     * @param {string} id
     * @param {number} bytes
     * @param {number} now
     * @returns {number | undefined}
     */
    private _rate;
    /**
     * Ids of the remote tracks that should be playing: negotiated to receive, live, not muted.
     * @returns {Set<string>}
     */
    receivingTrackIds(): Set<string>;
    /** @returns {Promise<Record<string, any>>} */
    collect(): Promise<Record<string, any>>;
}
/**
 * What the reporter needs of a room client: its PeerConnections, the others' muted track ids and
 * a way to send.
 */
export type StatsSource = {
    publisher: RTCPeerConnection | null;
    subscriber: RTCPeerConnection | null;
    remoteMuted: Set<string>;
    signaling: {
        send(message: {
            type: string;
            [field: string]: unknown;
        }): boolean;
    };
};
