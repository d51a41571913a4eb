"""relayroom signaling: the aiohttp application, protocol, tokens and rooms."""

__version__ = "0.1.0"
