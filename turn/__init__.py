"""relayroom embedded STUN/TURN server. Imports nothing from relayroom.signaling or media."""
