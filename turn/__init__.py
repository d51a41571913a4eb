"""relayroom embedded STUN/TURN server. Imports nothing from signaling or media."""
