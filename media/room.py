"""The media relay of one room: its participants and who receives which track.

The room is the only place that knows every participant: when one publishes, it subscribes the
others and renegotiates them; when a track goes (unpublished, publisher left or failed), it
unsubscribes them. The others renegotiate concurrently, in the background: the publisher's answer
never waits for them. It reports to signaling through ``on_event`` only.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable

from .aiortc_hooks import StunGuard, check_compatibility
from .datachannels import DataSettings, RoomData
from .errors import Closed, UnknownTrack
from .events import (
    ActiveSpeakers,
    MediaEvent,
    ParticipantFailed,
    TrackInfo,
    TrackPublished,
    TrackUnpublished,
)
from .forwarding import TrackHub
from .participant import Participant, ParticipantCallbacks
from .persistence import TopicStore
from .pipe import Address, PipedTrack, PipeEndpoint, PipeReceiver, PipeSender
from .sdp_policy import valid_msid_id
from .settings import MediaSettings
from .speakers import SpeakerDetector
from .tasks import TaskOwner
from .viewer import Selector, Viewer

logger = logging.getLogger(__name__)


class Room:
    """One room's relay. Owns its participants; ``close()`` closes them all."""

    def __init__(
        self,
        name: str,
        settings: MediaSettings,
        on_event: Callable[[MediaEvent], None],
        *,
        data: DataSettings | None = None,
        store: TopicStore | None = None,
        pipes: PipeEndpoint | None = None,
    ) -> None:
        """``data`` turns the DataChannel relay on; ``store`` persists its persistent topics;
        ``pipes`` lets the room send its tracks to, and receive tracks from, other processes."""
        check_compatibility()
        self.name = name
        self.settings = settings
        self._on_event = on_event
        self._participants: dict[str, Participant] = {}
        self._viewers: dict[str, Viewer] = {}  # WHEP sessions (media/viewer.py)
        self._guard = StunGuard()
        self._tasks = TaskOwner()
        self._closed = False
        self._retired_timeouts = 0
        self._callbacks = ParticipantCallbacks(
            emit=self._emit,
            tracks_changed=self._tracks_changed,
            failed=self._failed,
            closed=self._participant_closed,
        )
        self._data = RoomData(name, data, store, self._emit) if data is not None else None
        self._speakers = SpeakerDetector(
            settings.active_speaker_threshold_dbov, settings.active_speaker_max
        )
        self._ranking_speakers = False
        self._pipes = pipes
        self._piped_in: dict[tuple[str, str], PipeReceiver] = {}  # (publisher, track id)
        self._piped_out: dict[int, PipeSender] = {}  # by pipe id
        self.on_piped_track_ended: Callable[[PipeReceiver], None] | None = None
        """Told when a track piped in ends by itself (origin gone or silent), not replaced."""

    # ---------------------------------------------------------------- queries

    @property
    def participants(self) -> dict[str, Participant]:
        return dict(self._participants)

    def participant(self, participant_id: str) -> Participant | None:
        return self._participants.get(participant_id)

    def tracks(self) -> list[tuple[str, TrackInfo]]:
        """(publisher participant id, track) of every track currently published, here or
        piped in from another process."""
        local = [(p.id, info) for p in self._participants.values() for info in p.published_tracks()]
        return local + [(r.track.publisher_id, r.hub.info) for r in self._piped_in.values()]

    def local_hubs(self) -> list[TrackHub]:
        """The hubs of this process's own publishers (what it may pipe elsewhere)."""
        return [h for p in self._participants.values() for h in p.published_hubs()]

    def hubs(self) -> list[TrackHub]:
        """Every published track's hub, in the order participants joined and published, then
        the tracks piped in from other processes."""
        local = [h for p in self._participants.values() for h in p.published_hubs()]
        return local + [r.hub for r in self._piped_in.values()]

    def piped_in(self) -> list[PipeReceiver]:
        """The tracks piped in from other processes (their far ends here)."""
        return list(self._piped_in.values())

    def piped_out(self) -> list[PipeSender]:
        """This room's tracks piped to other processes (their origin ends here)."""
        return list(self._piped_out.values())

    @property
    def viewers(self) -> dict[str, Viewer]:
        return dict(self._viewers)

    def viewer(self, viewer_id: str) -> Viewer | None:
        return self._viewers.get(viewer_id)

    @property
    def data(self) -> RoomData | None:
        """The DataChannel relay (None when the room was made without ``data`` settings)."""
        return self._data

    @property
    def negotiation_timeouts(self) -> int:
        """Subscriber offers left unanswered past their timeout (each resent, or failed)."""
        live = sum(p.negotiation_timeouts for p in self._participants.values())
        return self._retired_timeouts + live

    @property
    def malformed_stun_packets(self) -> int:
        """Datagrams on this room's media ports that crashed the STUN parser (contained)."""
        return self._guard.count

    # ---------------------------------------------------------------- lifecycle

    async def add_participant(
        self,
        participant_id: str,
        *,
        can_publish: bool,
        can_subscribe: bool,
        can_publish_data: bool = True,
    ) -> Participant:
        """Create a participant; it is subscribed to every track already published.

        A participant with the same id is closed first (reason ``replaced``). With the
        DataChannel relay on, the room's persisted topics are loaded first (once).
        """
        if self._data is not None:
            await self._data.ready()
        if self._closed:
            raise Closed(f"room {self.name} is closed")
        if not valid_msid_id(participant_id):
            raise ValueError(
                f"participant id {participant_id!r} cannot be an msid stream id "
                "(1-64 token characters: letters, digits, !#$%&'*+-.^_`{|}~)"
            )
        old = self._participants.get(participant_id)
        if old is not None:
            await old.close("replaced")
        participant = Participant(
            participant_id,
            room_name=self.name,
            settings=self.settings,
            can_publish=can_publish,
            can_subscribe=can_subscribe,
            stun_guard=self._guard,
            callbacks=self._callbacks,
        )
        self._participants[participant_id] = participant
        if self._data is not None:
            peer = self._data.attach(participant, can_publish_data=can_publish_data)
            participant.set_data_stats(peer.stats)
        logger.info(
            "room %s: participant %s added",
            self.name,
            participant_id,
            extra={"room": self.name, "participant": participant_id},
        )
        if can_subscribe:
            subscribed = False
            for other in list(self._participants.values()):
                if other is participant:
                    continue
                for hub in other.published_hubs():
                    subscribed |= participant.subscribe(hub)
            for receiver in self._piped_in.values():
                subscribed |= participant.subscribe(receiver.hub)
            if subscribed:
                await participant.renegotiate()
        return participant

    async def add_viewer(self, viewer_id: str, offer_sdp: str, selector: Selector) -> str:
        """A WHEP viewer answering ``offer_sdp``; fed by the selected publishers' tracks.

        Returns the answer SDP. A viewer with the same id is closed first.
        """
        if self._closed:
            raise Closed(f"room {self.name} is closed")
        await self.remove_viewer(viewer_id)
        viewer = Viewer(
            viewer_id,
            room_name=self.name,
            settings=self.settings,
            stun_guard=self._guard,
            selector=selector,
            on_failed=self._viewer_failed,
        )
        self._viewers[viewer_id] = viewer
        try:
            return await viewer.answer(offer_sdp, self.hubs())
        except BaseException:
            await self.remove_viewer(viewer_id)
            raise

    async def remove_viewer(self, viewer_id: str) -> None:
        """Close a WHEP viewer (idempotent; unknown ids are ignored)."""
        viewer = self._viewers.pop(viewer_id, None)
        if viewer is not None:
            await viewer.close()

    def _viewer_failed(self, viewer: Viewer, reason: str) -> None:
        if self._viewers.get(viewer.id) is viewer:
            self._emit(ParticipantFailed(viewer.id, reason))
            self._tasks.spawn(self.remove_viewer(viewer.id), "remove-failed-viewer")

    async def remove_participant(self, participant_id: str, reason: str) -> None:
        """Close a participant (idempotent; unknown ids are ignored)."""
        participant = self._participants.get(participant_id)
        if participant is not None:
            await participant.close(reason)

    async def close(self) -> None:
        """Close every participant; idempotent."""
        self._closed = True
        for viewer_id in list(self._viewers):
            await self.remove_viewer(viewer_id)
        for end in [*self._piped_out.values(), *self._piped_in.values()]:
            await end.close("room closed")
        for participant in list(self._participants.values()):
            await participant.close("room closed")
        if self._data is not None:
            await self._data.close()
        await self._tasks.close()

    # ---------------------------------------------------------------- pipes

    def _endpoint(self) -> PipeEndpoint:
        if self._pipes is None:
            raise RuntimeError(f"room {self.name} has no pipe endpoint")
        if self._closed:
            raise Closed(f"room {self.name} is closed")
        return self._pipes

    async def pipe_track(
        self, publisher_id: str, track_id: str, pipe_id: int, far: Address
    ) -> PipeSender:
        """Send a local publisher's track to another process's pipe socket at ``far``.

        Raises :class:`UnknownTrack` when that participant does not publish that track here.
        The pipe closes with the track, or when the far end ends it or goes silent.
        """
        endpoint = self._endpoint()
        participant = self._participants.get(publisher_id)
        hub = None
        if participant is not None:
            hub = next((h for h in participant.published_hubs() if h.info.id == track_id), None)
        if hub is None:
            raise UnknownTrack(f"{publisher_id!r} publishes no track {track_id!r} here")
        sender = endpoint.send_track(hub, pipe_id, far, self._pipe_out_closed)
        self._piped_out[pipe_id] = sender
        await sender.start()
        return sender

    async def close_pipes_with(self, peer: Address, reason: str) -> int:
        """Close every pipe to or from ``peer`` (its process is known to be gone); returns
        how many. Their subscribers lose the tracks at once instead of after the timeout."""
        ends = [e for e in [*self._piped_in.values(), *self._piped_out.values()] if e.peer == peer]
        for end in ends:
            await end.close(reason)
        return len(ends)

    def _pipe_out_closed(self, sender: PipeSender) -> None:
        if self._piped_out.get(sender.pipe_id) is sender:
            del self._piped_out[sender.pipe_id]

    def receive_piped_track(self, track: PipedTrack, pipe_id: int, origin: Address) -> PipeReceiver:
        """Take a track piped from another process: every local participant that may subscribe
        gets it, as a local publisher's track. A track of the same publisher and id that was
        piped in before is replaced. When the pipe closes (the origin ended it or went silent)
        the subscribers lose the track; piping it again brings it back."""
        endpoint = self._endpoint()
        key = (track.publisher_id, track.info.id)
        old = self._piped_in.pop(key, None)
        if old is not None:
            self._remove_piped(old)
            self._tasks.spawn(old.close("replaced"), "pipe-replaced")
        receiver = endpoint.receive_track(
            track, pipe_id, origin, self.settings, self._pipe_in_closed
        )
        self._piped_in[key] = receiver
        hub = receiver.hub
        if not hub.is_video:
            hub.on_audio_level = functools.partial(self._speakers.observe, track.publisher_id)
            self._start_ranking_speakers()
        self._resubscribe(added=[hub], removed=[])
        return receiver

    def _pipe_in_closed(self, receiver: PipeReceiver) -> None:
        key = (receiver.track.publisher_id, receiver.track.info.id)
        if self._piped_in.get(key) is receiver:
            del self._piped_in[key]
            self._remove_piped(receiver)
            listener = self.on_piped_track_ended
            if listener is not None and not self._closed:
                try:
                    listener(receiver)
                except Exception:
                    logger.exception("room %s: pipe listener failed", self.name)

    def _remove_piped(self, receiver: PipeReceiver) -> None:
        logger.info(
            "room %s: piped track %s/%s ended (%s)",
            self.name,
            receiver.track.publisher_id,
            receiver.track.info.id,
            receiver.close_reason or "replaced",
            extra={"room": self.name},
        )
        self._resubscribe(added=[], removed=[receiver.hub])

    def _resubscribe(
        self, added: list[TrackHub], removed: list[TrackHub], publisher: Participant | None = None
    ) -> None:
        """Every local participant (but ``publisher``) drops ``removed`` and takes ``added``;
        the changed ones renegotiate in their own tasks: nothing here waits for a subscriber.
        Viewers move their legs off removed hubs (before those close: media/viewer.py)."""
        # While the room closes, every participant is closing too: no renegotiation.
        others = [] if self._closed else list(self._participants.values())
        for other in others:
            if other is publisher:
                continue
            changed = False
            for hub in removed:
                changed |= other.unsubscribe(hub)
            for hub in added:
                changed |= other.subscribe(hub)
            if changed:
                self._tasks.spawn(other.renegotiate(), f"renegotiate-{other.id}")
        if not self._closed and self._viewers:
            hubs = self.hubs()
            for viewer in list(self._viewers.values()):
                viewer.tracks_changed(hubs)

    # ---------------------------------------------------------------- callbacks

    def _emit(self, event: MediaEvent) -> None:
        try:
            self._on_event(event)
        except Exception:
            logger.exception(
                "room %s: event listener failed on %s", self.name, event, extra={"room": self.name}
            )

    def _tracks_changed(
        self, publisher: Participant, added: list[TrackHub], removed: list[TrackHub]
    ) -> None:
        """Announce the changes and update everyone's subscriptions."""
        for hub in added:
            self._emit(TrackPublished(publisher.id, hub.info))
            if not hub.is_video:
                hub.on_audio_level = functools.partial(self._speakers.observe, publisher.id)
                self._start_ranking_speakers()
        self._resubscribe(added, removed, publisher)
        for hub in removed:
            self._emit(TrackUnpublished(publisher.id, hub.info))
        if removed and self._piped_out:
            for sender in list(self._piped_out.values()):
                if sender.hub in removed:
                    self._tasks.spawn(sender.close("track ended"), "pipe-track-ended")

    def _start_ranking_speakers(self) -> None:
        if not self._ranking_speakers and not self._closed:
            self._ranking_speakers = True
            self._tasks.spawn(self._rank_speakers(), "active-speakers")

    async def _rank_speakers(self) -> None:
        """Once per window: report the ranking of speakers when it changed."""
        while True:
            await asyncio.sleep(self.settings.active_speaker_interval_s)
            ranking = self._speakers.rank()
            if ranking is not None:
                self._emit(ActiveSpeakers(tuple(ranking)))

    def _failed(self, participant: Participant, reason: str) -> None:
        self._emit(ParticipantFailed(participant.id, reason))
        self._tasks.spawn(self.remove_participant(participant.id, reason), "remove-failed")

    def _participant_closed(self, participant: Participant) -> None:
        if self._participants.get(participant.id) is participant:
            self._retired_timeouts += participant.negotiation_timeouts
            del self._participants[participant.id]
            self._speakers.forget(participant.id)
            if self._data is not None:
                self._data.detach(participant.id)
            logger.info(
                "room %s: participant %s removed",
                self.name,
                participant.id,
                extra={"room": self.name, "participant": participant.id},
            )
