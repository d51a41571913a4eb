"""dnspython stays unloaded in the server until a ``.local`` candidate needs it.

Each check runs in a fresh interpreter: the test process itself has loaded aioice already.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

LAUNCH = """
import sys
from relayroom.launcher import main
sys.argv = ["relayroom", "--help"]
try:
    main()  # imports aiortc and the whole CLI as `relayroom serve` does, then prints help
except SystemExit:
    pass
from relayroom.lazy_mdns import mdns_loaded
loaded = sorted(m for m in sys.modules if m == "dns" or m.startswith("dns."))
assert not loaded and not mdns_loaded(), loaded
import aioice.ice
# aioice asks this of every remote candidate: a plain address loads nothing
assert not aioice.ice.mdns.is_mdns_hostname("192.0.2.1") and not mdns_loaded()
assert aioice.ice.mdns.is_mdns_hostname("4f2b6e9a-1c3d-4e5f-8a7b-9c0d1e2f3a4b.local")
assert mdns_loaded()
# First use: what aioice calls when a remote candidate is a .local name loads the real module.
create = aioice.ice.mdns.create_mdns_protocol
import aioice.mdns
assert create is aioice.mdns.create_mdns_protocol and mdns_loaded()
assert aioice.ice.mdns.MDnsProtocol is aioice.mdns.MDnsProtocol
assert "dns.message" in sys.modules
print("ok")
"""


def test_the_server_defers_dnspython_until_mdns_is_used() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", LAUNCH], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("ok")
