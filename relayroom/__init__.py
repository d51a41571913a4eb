"""relayroom: a self-hosted WebRTC signaling server, media relay (SFU) and TURN server.

Subpackages: :mod:`relayroom.signaling` (the aiohttp application and CLI),
:mod:`relayroom.media` (the SFU data plane), :mod:`relayroom.turn` (STUN/TURN) and
:mod:`relayroom.web` (the static browser app).
"""

__version__ = "0.1.0"
