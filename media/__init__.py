"""relayroom media plane: per-room RTP and DataChannel relay on aiortc."""
