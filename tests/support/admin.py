"""Admin API requests in the tests."""

from __future__ import annotations

from relayroom.signaling.tokens import Grants, mint_token
from tests.conftest import TEST_SECRET

ADMIN = {
    "Authorization": "Bearer "
    + mint_token(TEST_SECRET, room="*", identity="ops", ttl_s=600, grants=Grants(admin=True))
}
"""Headers of an admin request for every room (of a server with the tests' secret)."""
