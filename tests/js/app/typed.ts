// Compiled with tsc against the installed package (tests/js/test_app.py): the declarations an
// application sees through package.json's `exports` and `types`.
import {
  Backoff,
  RoomClient,
  SignalingError,
  type DataMessage,
  type Joined,
  type Participant,
} from "@relayroom/client";
import { backoffDelay } from "@relayroom/client/backoff.js";

export async function start(url: string, token: () => Promise<string>): Promise<string> {
  const client = new RoomClient(url, { data: true, signaling: { backoff: new Backoff({ maxMs: 5000 }) } });
  const off = client.on("track", ({ participantId, track, stream }) => {
    const kind: "audio" | "video" | string = track.kind;
    void [participantId.length, kind, stream.id];
  });
  off();
  client.on("data", (message: DataMessage) => void message.payload);
  client.on("reconnecting", ({ attempt, delayMs }) => void (attempt + delayMs + backoffDelay(attempt)));
  client.on("participant_connection", ({ participant_id, state }) => {
    const reconnecting: boolean = state === "reconnecting";
    void [participant_id, reconnecting];
  });
  // @ts-expect-error: the detail of "close" has no such field
  client.on("close", ({ resumed }) => void resumed);
  // @ts-expect-error: not an event of a RoomClient
  client.on("no-such-event", () => {});
  try {
    const joined: Joined = await client.join("room", token, "name");
    const me: Participant | null = client.self;
    // @ts-expect-error: sendData's options take `lossy`, not `unreliable`
    client.sendData("chat", { text: "hi" }, { unreliable: true });
    const sent: boolean = client.sendData("chat", { text: "hi" }, { to: [joined.participant.id] });
    return `${me?.name} ${sent}`;
  } catch (error) {
    if (error instanceof SignalingError) return error.code;
    throw error;
  }
}
