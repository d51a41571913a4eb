"""relayroom signaling: the aiohttp application, protocol, tokens and rooms."""
