/**
 * Parse one signaling frame: a JSON object with a string `type`, else null (dropped).
 * @param {string} text
 * @returns {ServerMessage | null}
 */
export function parseServerMessage(text: string): ServerMessage | null;
/**
 * Parse one DataChannel frame from the relay: an object or an array of them (a batch). Items
 * that are not messages are skipped; topic `relay` is the server's own (only `sync` is known).
 * @param {string} text
 * @param {boolean} lossy the channel it came on
 * @returns {DataEvent[]}
 */
export function parseDataFrame(text: string, lossy: boolean): DataEvent[];
/**
 * A participant as the server describes it. `connection` is filled in by the client from
 * `participant_connection` messages (absent means connected).
 */
export type Participant = {
    /**
     * the server's id of this session (`PA_...`)
     */
    id: string;
    /**
     * the token's `sub`
     */
    identity: string;
    /**
     * display name
     */
    name: string;
    connection?: "connected" | "reconnecting" | undefined;
};
/**
 * A published track.
 */
export type TrackInfo = {
    id: string;
    kind: "audio" | "video";
    muted: boolean;
    codec?: string | undefined;
};
/**
 * The `joined` reply (docs/protocol.md).
 */
export type Joined = {
    type: "joined";
    protocol: number;
    /**
     * this session
     */
    participant: Participant;
    room: {
        name: string;
        mode: "sfu" | "p2p";
    };
    /**
     * the others
     */
    participants: Participant[];
    /**
     * tracks already published
     */
    tracks: {
        participant_id: string;
        track: TrackInfo;
    }[];
    ice_servers: RTCIceServer[];
    resume_token: string;
    resumed: boolean;
    heartbeat_s: number;
    limits: Record<string, number>;
};
/**
 * Any server message: a `type` and its fields.
 */
export type ServerMessage = {
    type: string;
    ref?: number | string;
    [field: string]: any;
};
/**
 * One relayed DataChannel message.
 */
export type DataMessage = {
    topic: string;
    payload: unknown;
    /**
     * the sender's participant id (set by the server)
     */
    from: string | undefined;
    /**
     * the receivers it was addressed to, if targeted
     */
    to: string[] | undefined;
    /**
     * whether it came on the lossy (unordered, no-retransmit) channel
     */
    lossy: boolean;
};
/**
 * The relay's announcement of a replay of the room's persistent topics.
 */
export type DataSync = {
    op: "sync";
    /**
     * "resync": this client fell too far behind; reset the
     * persistent state before the replay
     */
    reason: "join" | "resync";
    /**
     * how many persisted messages follow
     */
    count: number;
};
/**
 * What one DataChannel frame carries, in order.
 */
export type DataEvent = {
    type: "data";
    detail: DataMessage;
} | {
    type: "datasync";
    detail: DataSync;
};
