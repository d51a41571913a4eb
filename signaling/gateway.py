"""The signaling side's narrow door into the media plane (`media/`).

Signaling never touches aiortc objects: it hands typed messages of a room member to this
gateway, and turns the media plane's events back into protocol messages for the room.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

from relayroom.media.datachannels import DataSettings
from relayroom.media.errors import MediaError, UnknownTrack
from relayroom.media.events import (
    ActiveSpeakers,
    DataNotice,
    LayersActive,
    MediaEvent,
    ParticipantFailed,
    SubscribeOffer,
    TrackInfo,
    TrackMuted,
    TrackPublished,
    TrackUnpublished,
)
from relayroom.media.layers import LayerRequest, Quality
from relayroom.media.persistence import TopicStore
from relayroom.media.pipe import Address, PipedTrack, PipeEndpoint, PipeReceiver
from relayroom.media.recording import (
    Recording,
    RecordingError,
    Recordings,
    RecordingSettings,
    Selection,
)
from relayroom.media.settings import MediaSettings
from relayroom.media.tasks import TaskOwner
from relayroom.media.topics import WhiteboardLimits

if TYPE_CHECKING:  # these import aiortc, loaded with the first room (relayroom/lazy_stack.py)
    from relayroom.media.participant import Participant
    from relayroom.media.room import Room as MediaRoom
    from relayroom.media.viewer import Selector

from .config import Config
from .logs import about, context_about
from .protocol import (
    Candidate,
    CloseReason,
    ErrorCode,
    Mute,
    ProtocolError,
    PublishOffer,
    SubscribeAnswer,
    Subscription,
    layers,
)
from .rooms import Member, RoomState

log = logging.getLogger(__name__)


def compiled_step_built() -> bool:
    """Whether relayroom's compiled forwarding step is importable (no aiortc import)."""
    from relayroom.media.rtp_build import FastSender

    return FastSender is not None


Reply = Callable[[dict[str, Any], str | int | None], None]
MediaMessage = PublishOffer | SubscribeAnswer | Candidate | Mute | Subscription


class RoomMessages(Protocol):
    """Where the gateway's messages for members go: the room registry of this node, or on a
    shard node (cluster_shard.py) the room's home node."""

    def send_to(self, room: str, participant_id: str, message: dict[str, Any]) -> bool: ...

    def broadcast(self, room: str, message: dict[str, Any], exclude: str | None = None) -> int: ...

    def end(self, room: str, participant_id: str, reason: CloseReason) -> None: ...


class RemoteMedia(Protocol):
    """A home node's media of members placed on a shard node (cluster_shard.Shards)."""

    async def place(self, room: RoomState, member: Member) -> bool:
        """Whether the member's media goes to another node (decided once, at join)."""
        ...

    def hosts(self, room: str, participant_id: str) -> bool: ...

    async def handle(self, room: RoomState, member: Member, message: MediaMessage) -> None: ...

    async def left(self, room: RoomState, member: Member) -> None: ...

    def local_changed(self, room: str) -> None:
        """A member with media here joined or left `room` (the pipes it needs change)."""

    def tracks(self, room: str) -> list[tuple[str, TrackInfo]]:
        """(publisher, track) of the tracks published on the room's shards."""
        ...


def layer_request(message: Subscription) -> LayerRequest:
    """The media plane's form of a (validated) ``subscription`` message."""
    quality: Quality | None = None
    if message.quality in ("low", "medium", "high"):
        quality = message.quality  # type: ignore[assignment]  # checked just above
    return LayerRequest(
        max_width=message.max_width,
        max_height=message.max_height,
        quality=quality,
        paused=bool(message.paused),
    )


def media_settings(config: Config) -> MediaSettings:
    """The media plane's settings, derived from the one Config."""
    if config.media_fast_path and not compiled_step_built():
        log.warning(
            "forwarding in Python: the compiled step (media/_fastpath.c) was not built at "
            "install (no C compiler or Python headers?); it costs more CPU per packet"
        )
    ice_hosts = config.ice_hosts
    if not ice_hosts:
        from aioice.ice import get_host_addresses

        ice_hosts = tuple(get_host_addresses(use_ipv4=True, use_ipv6=False))
        if _is_loopback(config.host):
            ice_hosts += ("127.0.0.1",)
    # A dev server talks to browsers on the same machine or LAN.
    return MediaSettings(
        ice_hosts=ice_hosts,
        udp_port_min=config.udp_port_min,
        udp_port_max=config.udp_port_max,
        allow_loopback_candidates=config.allow_loopback_candidates or config.dev,
        allow_private_candidates=config.allow_private_candidates or config.dev,
        max_sdp_bytes=config.max_sdp_bytes,
        max_mlines=config.max_mlines,
        max_tracks_per_participant=config.max_tracks_per_participant,
        codecs=config.codecs,
        keyframe_request_interval_s=config.keyframe_request_interval_s,
        subscriber_answer_timeout_s=config.subscriber_answer_timeout_s,
        subscriber_offer_retries=config.subscriber_offer_retries,
        max_delay_video_ms=config.media_max_delay_video_ms,
        max_delay_audio_ms=config.media_max_delay_audio_ms,
        receive_queue_max=config.media_receive_queue_max,
        send_buffer_max_bytes=config.media_send_buffer_max_bytes,
        fast_path=config.media_fast_path,
        simulcast_max_layers=config.simulcast_max_layers,
        simulcast_tick_s=config.simulcast_tick_s,
        simulcast_layer_timeout_s=config.simulcast_layer_timeout_s,
        simulcast_upgrade_headroom=config.simulcast_upgrade_headroom,
        simulcast_switch_keyframe_interval_s=config.simulcast_switch_keyframe_interval_s,
        simulcast_switch_max_deferrals=config.simulcast_switch_max_deferrals,
        simulcast_upgrade_hold_s=config.simulcast_upgrade_hold_s,
        dynacast=config.dynacast,
        dynacast_pause_delay_s=config.dynacast_pause_delay_s,
        active_speaker_interval_s=config.active_speaker_interval_s,
        active_speaker_threshold_dbov=config.active_speaker_threshold_dbov,
        active_speaker_max=config.active_speaker_max,
    )


def recording_settings(config: Config) -> RecordingSettings:
    """The recorder's settings from the Config's `recording_*` fields."""
    return RecordingSettings(
        directory=config.recording_dir or config.data_dir / "recordings",
        max_duration_s=config.recording_max_duration_s,
        max_bytes=config.recording_max_bytes,
        max_active=config.recording_max_active,
        reorder_s=config.recording_reorder_s,
        cluster_ms=config.recording_cluster_ms,
    )


def data_settings(config: Config) -> DataSettings:
    """The DataChannel relay's settings, derived from the one Config."""
    return DataSettings(
        max_message_bytes=config.data_max_message_bytes,
        msgs_per_s=config.data_msgs_per_s,
        msgs_burst=config.data_msgs_burst,
        bytes_per_s=config.data_bytes_per_s,
        bytes_burst=config.data_bytes_burst,
        lossy_buffer_bytes=config.data_lossy_buffer_bytes,
        reliable_buffer_bytes=config.data_reliable_buffer_bytes,
        persistent_topics=config.data_persistent_topics,
        room_max_bytes=config.data_room_max_bytes,
        room_max_messages=config.data_room_max_messages,
        max_depth=config.input_max_depth,
        whiteboard=WhiteboardLimits(
            max_points=config.data_whiteboard_max_points,
            max_width=config.data_whiteboard_max_width,
        ),
    )


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def track_json(track: TrackInfo) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(track).items() if v is not None}


@dataclass(frozen=True)
class ParticipantMedia:
    """What a member publishes and receives, as the admin API shows it."""

    tracks: list[TrackInfo]
    subscriptions: list[tuple[str, str]]  # (publisher id, track id)


class MediaGateway:
    """Owns the media rooms of this node (one per `sfu` room) and routes to them."""

    def __init__(
        self,
        settings: MediaSettings,
        registry: RoomMessages,
        *,
        data: DataSettings | None = None,
        store: TopicStore | None = None,
        recordings: Recordings | None = None,
        pipes: PipeEndpoint | None = None,
    ) -> None:
        """``pipes``: this node's pipe socket (cluster mode), so rooms can span nodes."""
        self.settings = settings
        self._registry = registry
        self._pipes = pipes
        self.remote: RemoteMedia | None = None
        """Set on a cluster node: members whose media is on a shard node go there."""
        self.pipe_ended: list[Callable[[str, PipeReceiver], None]] = []
        """Told (room, receiver) when a track piped in here ends by itself."""
        self.extra_rooms: Callable[[], Mapping[str, MediaRoom]] | None = None
        """Set on a cluster node: the media rooms it serves as a shard (for `rooms`)."""
        self.data_relayed: Callable[[str, str, str, frozenset[str] | None], None] | None = None
        """Told (room, label, text, targets) of each DataChannel message a member here sent."""
        self._recordings = recordings
        self._rooms: dict[str, MediaRoom] = {}
        self._data = data or DataSettings()
        self._store = store
        # Members of this node's sfu rooms. Their media participants (and PeerConnections) are
        # made on first use (a media message, or tracks to subscribe to): an idle member of a
        # room without media costs no PeerConnection.
        self._members: dict[str, dict[str, Member]] = {}
        self._adding: dict[tuple[str, str], asyncio.Task[Participant]] = {}
        self._tasks = TaskOwner()
        self._closed_data_failures = 0
        self._closed_negotiation_timeouts = 0
        # Observers of the media plane's events, (room, event), before they become messages
        # (the event log's track events). Synchronous; an observer's exception is contained.
        self.listeners: list[Callable[[str, MediaEvent], None]] = []

    def data_failures(self) -> int:
        """DataChannel messages whose handling raised and was contained (ever, this node)."""
        live = sum(r.data.failures for r in self._rooms.values() if r.data is not None)
        return self._closed_data_failures + live

    def negotiation_timeouts(self) -> int:
        """Subscriber offers left unanswered past their timeout (ever, this node)."""
        live = sum(r.negotiation_timeouts for r in self._rooms.values())
        return self._closed_negotiation_timeouts + live

    def _retire(self, media_room: MediaRoom) -> None:
        self._closed_negotiation_timeouts += media_room.negotiation_timeouts
        if media_room.data is not None:
            self._closed_data_failures += media_room.data.failures

    @property
    def store(self) -> TopicStore | None:
        return self._store

    async def start(self) -> None:
        """Open the store of persistent DataChannel topics."""
        if self._store is not None:
            await self._store.open()

    @property
    def rooms(self) -> Mapping[str, MediaRoom]:
        """The media rooms, read-only: for the stats collector (media-side code) and tests.

        Signaling code asks the methods below instead of reaching into media objects. On a
        cluster node it includes the rooms this node serves as a shard (`extra_rooms`), so
        stats, metrics and the load report count their media too.
        """
        extra = self.extra_rooms() if self.extra_rooms is not None else None
        if not extra:
            return MappingProxyType(self._rooms)
        return MappingProxyType({**extra, **self._rooms})

    def room_count(self) -> int:
        """Rooms of this node with a media relay."""
        return len(self._rooms)

    def track_count(self, room: str) -> int:
        """Tracks published in `room` (0 when it has no media relay yet)."""
        media_room = self._rooms.get(room)
        return len(media_room.tracks()) if media_room is not None else 0

    def participant_media(self, room: str, participant_id: str) -> ParticipantMedia | None:
        """A member's published tracks and subscriptions; None without a media session."""
        participant = self._participant(room, participant_id)
        if participant is None:
            return None
        return ParticipantMedia(participant.published_tracks(), participant.subscriptions())

    async def set_muted(
        self, room: str, participant_id: str, track_id: str, muted: bool
    ) -> TrackInfo | None:
        """Mute or unmute a published track (admin); None when the member has no media session.

        Raises `UnknownTrack` or `Closed` (media errors) as the media participant does.
        """
        participant = self._participant(room, participant_id)
        if participant is None:
            return None
        return await participant.set_muted(track_id, muted)

    # ---- recording (media/recording.py)

    def _recorder(self) -> Recordings:
        if self._recordings is None:
            raise RecordingError("unavailable", "recording is not configured on this node")
        return self._recordings

    def add_recording_listener(self, sink: Callable[[str, dict[str, Any]], None]) -> None:
        """`sink(kind, fields)` gets `recording_started` and `recording_finished`."""
        if self._recordings is not None:
            self._recordings.add_listener(sink)

    def start_recording(self, room: str, selection: Selection) -> Recording:
        """Record `room`'s published tracks (or those `selection` takes); `RecordingError`."""
        media_room = self._rooms.get(room)
        hubs = (
            [(p.id, hub) for p in media_room.participants.values() for hub in p.published_hubs()]
            if media_room is not None
            else []
        )
        members = self._members.get(room, {})
        identities = {pid: m.identity for pid, m in members.items()}
        return self._recorder().start(room, hubs, selection, identities)

    def stop_recording(self, recording_id: str) -> Recording:
        recording = self._recorder().get(recording_id)
        if recording is None:
            raise RecordingError("not_found", f"no recording {recording_id[:64]!r}")
        recording.stop("api")
        return recording

    def active_recording(self, room: str) -> str | None:
        """The id of the recording running in `room`, if any."""
        recording = self._recordings.active(room) if self._recordings is not None else None
        return recording.id if recording is not None else None

    def recording(self, recording_id: str) -> Recording | None:
        return self._recordings.get(recording_id) if self._recordings is not None else None

    def recordings(self, room: str | None = None) -> list[Recording]:
        return self._recordings.list(room) if self._recordings is not None else []

    def _recording_event(self, room: str, event: TrackPublished | TrackUnpublished) -> None:
        recordings = self._recordings
        if recordings is None or recordings.active(room) is None:
            return
        if isinstance(event, TrackUnpublished):
            recordings.track_unpublished(room, event.participant_id, event.track.id)
            return
        participant = self._participant(room, event.participant_id)
        for hub in participant.published_hubs() if participant is not None else []:
            if hub.info.id == event.track.id:
                member = self._members.get(room, {}).get(event.participant_id)
                identity = member.identity if member is not None else None
                recordings.track_published(room, event.participant_id, hub, identity)

    def _participant(self, room: str, participant_id: str) -> Participant | None:
        media_room = self._rooms.get(room)
        return media_room.participant(participant_id) if media_room is not None else None

    async def handle(
        self, room: RoomState, member: Member, message: MediaMessage, reply: Reply
    ) -> None:
        if room.mode == "p2p":
            raise ProtocolError(
                ErrorCode.FORBIDDEN,
                f"'{message.type}' needs a room of mode sfu; p2p rooms use 'signal'",
                message.id,
            )
        remote = self.remote
        if remote is not None and remote.hosts(room.name, member.id):
            await remote.handle(room, member, message)
            return
        try:
            participant = await self._ensure(room.name, member)
            if participant is None:
                raise ProtocolError(ErrorCode.UNAVAILABLE, "no media session", message.id)
            if isinstance(message, PublishOffer):
                answer = await participant.publish_offer(message.sdp)
                reply({"type": "publish_answer", "sdp": answer}, message.id)
            elif isinstance(message, SubscribeAnswer):
                await participant.subscribe_answer(message.sdp)
            elif isinstance(message, Candidate):
                await participant.add_candidate(message.pc, message.candidate)
            elif isinstance(message, Subscription):
                participant.set_subscription(message.track_id, layer_request(message))
            else:
                await participant.set_muted(message.track_id, message.muted)
        except MediaError as exc:
            raise ProtocolError(ErrorCode(exc.code), exc.reason, message.id) from None

    async def add_viewer(
        self, room: RoomState, member: Member, offer_sdp: str, selector: Selector
    ) -> str:
        """A WHEP viewer for a member of an sfu room; returns the answer SDP.

        Raises `MediaError` (bad offer, closed room) for the caller to turn into a status.
        """
        if room.mode != "sfu":
            raise ProtocolError(ErrorCode.FORBIDDEN, "WHEP needs a room of mode sfu")
        media_room = self._media_room(room.name)
        return await media_room.add_viewer(member.id, offer_sdp, selector)

    async def viewer_candidate(
        self, room: str, member_id: str, candidate: Mapping[str, object]
    ) -> bool:
        """A trickled candidate for a WHEP viewer; False when it has none or it was refused."""
        media_room = self._rooms.get(room)
        viewer = media_room.viewer(member_id) if media_room is not None else None
        return viewer is not None and await viewer.add_candidate(candidate)

    def viewer_feed(self, room: str, member_id: str) -> dict[str, tuple[str, str] | None] | None:
        """What feeds a WHEP viewer's slots (kind -> (publisher id, track id)); None: no viewer."""
        media_room = self._rooms.get(room)
        viewer = media_room.viewer(member_id) if media_room is not None else None
        return viewer.feeding() if viewer is not None else None

    def tracks(self, room: RoomState) -> list[dict[str, Any]]:
        media_room = self._rooms.get(room.name)
        tracks = media_room.tracks() if media_room is not None else []
        if self.remote is not None:  # shard tracks not piped here (no subscriber here)
            known = {(pid, t.id) for pid, t in tracks}
            tracks += [x for x in self.remote.tracks(room.name) if (x[0], x[1].id) not in known]
        return [{"participant_id": pid, "track": track_json(t)} for pid, t in tracks]

    async def on_joined(self, room: RoomState, member: Member) -> None:
        if room.mode != "sfu":
            return
        if self.remote is not None and await self.remote.place(room, member):
            return
        self._members.setdefault(room.name, {})[member.id] = member
        if self.remote is not None:
            self.remote.local_changed(room.name)
        grants = member.grants
        if not (grants.can_publish or grants.can_subscribe or grants.can_publish_data):
            return  # nothing to send or receive (a WHEP viewer): no PeerConnections
        media_room = self._rooms.get(room.name)
        if media_room is not None and media_room.tracks():
            await self._ensure(room.name, member)

    async def on_left(self, room: RoomState, member: Member) -> None:
        remote = self.remote
        if remote is not None and remote.hosts(room.name, member.id):
            await remote.left(room, member)
            return
        pending = self._members.get(room.name)
        if pending is not None:
            pending.pop(member.id, None)
            if not pending:
                del self._members[room.name]
        if remote is not None:
            remote.local_changed(room.name)
        adding = self._adding.get((room.name, member.id))
        if adding is not None:
            await asyncio.wait([adding])
        media_room = self._rooms.get(room.name)
        if media_room is None:
            return
        await media_room.remove_participant(member.id, "left")
        await media_room.remove_viewer(member.id)
        # Re-check after the await: a concurrent last leaver may have closed this room, or a
        # new one of the same name may be in its place (that one is not ours to drop).
        if (
            not media_room.participants
            and room.name not in self._members
            and self._rooms.get(room.name) is media_room
        ):
            del self._rooms[room.name]
            self._retire(media_room)
            if self._recordings is not None:
                self._recordings.room_ended(room.name)
            await media_room.close()

    async def _ensure(self, room: str, member: Member) -> Participant | None:
        """The member's media participant, created (once) on first need."""
        media_room = self._rooms.get(room)
        participant = media_room.participant(member.id) if media_room else None
        if participant is not None:
            return participant
        if member.id not in self._members.get(room, {}):
            return None  # left meanwhile
        key = (room, member.id)
        task = self._adding.get(key)
        if task is None:
            task = self._adding[key] = asyncio.create_task(
                self._add(room, member), context=context_about(room, member.id)
            )
            task.add_done_callback(lambda _: self._adding.pop(key, None))
        return await asyncio.shield(task)

    def _media_room(self, room: str) -> MediaRoom:
        media_room = self._rooms.get(room)
        if media_room is None:
            from relayroom.media.room import Room as MediaRoom  # the WebRTC stack loads here

            media_room = self._rooms[room] = MediaRoom(
                room,
                self.settings,
                lambda event: self._on_event(room, event),
                data=self._data,
                store=self._store,
                pipes=self._pipes,
            )
            media_room.on_piped_track_ended = lambda receiver: self._pipe_ended(room, receiver)
            if media_room.data is not None and self.data_relayed is not None:
                relayed = self.data_relayed
                media_room.data.on_relayed = lambda label, text, to: relayed(room, label, text, to)
        return media_room

    def pipe_stats(self) -> tuple[dict[str, int], dict[str, int]]:
        """This node's track pipes by direction (in, out), and the datagrams its pipe socket
        received by result (accepted, or why dropped); empty without a pipe socket."""
        pipes = self._pipes
        if pipes is None:
            return {}, {}
        ends = pipes.pipes()
        out = sum(1 for e in ends if e.upstream)
        by_direction = {"in": len(ends) - out, "out": out}
        return by_direction, {"accepted": pipes.counters.datagrams, **pipes.counters.dropped}

    async def close_pipes_with(self, peer: Address) -> None:
        """Another node's pipe socket is gone (the node died): close every pipe with it."""
        for media_room in list(self._rooms.values()):
            await media_room.close_pipes_with(peer, "node gone")

    def deliver_data(self, room: str, label: str, text: str, to: frozenset[str] | None) -> None:
        """A DataChannel message relayed by another node of `room`: to the members here."""
        media_room = self._rooms.get(room)
        if media_room is not None and media_room.data is not None:
            media_room.data.deliver_remote(label, text, to)

    # ---- track pipes (rooms spanning nodes: cluster_shard.py decides, this executes)

    def local_member_count(self, room: str) -> int:
        """Members of `room` whose media is (or would be) on this node."""
        return len(self._members.get(room, {}))

    def wants_piped_tracks(self, room: str) -> bool:
        """Whether a member here may receive tracks published elsewhere."""
        return any(m.grants.can_subscribe for m in self._members.get(room, {}).values())

    def local_tracks(self, room: str) -> list[PipedTrack]:
        """The tracks published by this node's own members of `room`."""
        media_room = self._rooms.get(room)
        return [PipedTrack.of(h) for h in media_room.local_hubs()] if media_room else []

    async def pipe_track(
        self, room: str, publisher_id: str, track_id: str, pipe_id: int, far: Address
    ) -> None:
        """Send a local publisher's track to another node (`UnknownTrack` if it is gone)."""
        media_room = self._rooms.get(room)
        if media_room is None:
            raise UnknownTrack(f"no media in room {room!r} here")
        await media_room.pipe_track(publisher_id, track_id, pipe_id, far)

    def receive_piped_track(
        self, room: str, track: PipedTrack, pipe_id: int, origin: Address
    ) -> None:
        """Take a track piped from another node: this node's members of `room` receive it."""
        self._media_room(room).receive_piped_track(track, pipe_id, origin)
        self._tasks.spawn(self._ensure_subscribers(room), "ensure-subscribers", context_about(room))

    def _pipe_ended(self, room: str, receiver: PipeReceiver) -> None:
        for listener in self.pipe_ended:
            try:
                listener(room, receiver)
            except Exception:
                log.exception("pipe listener failed", extra=about(room))

    async def _add(self, room: str, member: Member) -> Participant:
        media_room = self._media_room(room)
        return await media_room.add_participant(
            member.id,
            can_publish=member.grants.can_publish,
            can_subscribe=member.grants.can_subscribe,
            can_publish_data=member.grants.can_publish_data,
        )

    async def _ensure_subscribers(self, room: str) -> None:
        """A track appeared: members waiting without media now have something to receive."""
        for member in list(self._members.get(room, {}).values()):
            if member.grants.can_subscribe:
                try:
                    await self._ensure(room, member)
                except MediaError as exc:
                    log.info(
                        "room=%s participant=%s: no media: %s",
                        room,
                        member.id,
                        exc,
                        extra=about(room, member.id),
                    )

    async def close(self) -> None:
        await self._tasks.close()
        if self._recordings is not None:
            self._recordings.close()
        rooms, self._rooms = list(self._rooms.values()), {}
        for media_room in rooms:
            self._retire(media_room)
            await media_room.close()
        if self._store is not None:
            await self._store.close()

    def _on_event(self, room: str, event: MediaEvent) -> None:
        """Media events become room messages (events flow up, never into media again)."""
        for listener in self.listeners:
            try:
                listener(room, event)
            except Exception:
                log.exception("media event listener failed", extra=about(room))
        registry = self._registry
        if isinstance(event, SubscribeOffer):
            registry.send_to(
                room, event.participant_id, {"type": "subscribe_offer", "sdp": event.sdp}
            )
        elif isinstance(event, TrackPublished | TrackUnpublished | TrackMuted):
            if isinstance(event, TrackPublished | TrackUnpublished):
                self._recording_event(room, event)
            if isinstance(event, TrackPublished):
                self._tasks.spawn(
                    self._ensure_subscribers(room), "ensure-subscribers", context_about(room)
                )
            kind = {
                TrackPublished: "track_published",
                TrackUnpublished: "track_unpublished",
                TrackMuted: "track_muted",
            }[type(event)]
            registry.broadcast(
                room,
                {
                    "type": kind,
                    "participant_id": event.participant_id,
                    "track": track_json(event.track),
                },
            )
        elif isinstance(event, ActiveSpeakers):
            registry.broadcast(
                room,
                {
                    "type": "active_speakers",
                    "speakers": [
                        {"participant_id": s.participant_id, "level": s.level_dbov}
                        for s in event.speakers
                    ],
                },
            )
        elif isinstance(event, LayersActive):
            registry.send_to(room, event.participant_id, layers(event.track_id, event.active))
        elif isinstance(event, DataNotice):
            registry.send_to(
                room,
                event.participant_id,
                {"type": "error", "code": ErrorCode(event.code).value, "message": event.message},
            )
        elif isinstance(event, ParticipantFailed):
            log.info(
                "room=%s participant=%s media failed: %s",
                room,
                event.participant_id,
                event.reason,
                extra=about(room, event.participant_id),
            )
            registry.send_to(
                room,
                event.participant_id,
                {
                    "type": "error",
                    "code": ErrorCode.UNAVAILABLE.value,
                    "message": f"media connection failed: {event.reason}",
                },
            )
            registry.end(room, event.participant_id, CloseReason.MEDIA_FAILED)
