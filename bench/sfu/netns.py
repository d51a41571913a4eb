"""The private network namespace the comparison runs in, and the veth pair its media uses.

Janus (libnice) skips loopback interfaces when gathering candidates, so media runs between two
addresses on a veth pair. Both ends stay in this namespace, which holds nothing else: no packet
leaves it. Outside such a namespace the benchmark re-executes itself under `unshare -rn`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys

SERVER_IF, CLIENT_IF = "rrsfu0", "rrsfu1"
SERVER_ADDR, CLIENT_ADDR = "10.77.0.1", "10.77.0.2"
_REEXEC_FLAG = "RELAYROOM_SFU_BENCH_NETNS"


def in_private_netns() -> bool:
    """True when this namespace has no interface but loopback and this benchmark's veth pair."""
    names = {name for _, name in socket.if_nameindex()}
    return names <= {"lo", SERVER_IF, CLIENT_IF}


def ensure_private_netns(argv: list[str]) -> None:
    """Return if already inside a private namespace, else re-execute under `unshare -rn`."""
    if in_private_netns():
        return
    if os.environ.get(_REEXEC_FLAG) or shutil.which("unshare") is None:
        sys.exit(
            "sfu_compare: refusing to run outside a private network namespace "
            "(this one has other interfaces), and `unshare -rn` is not available or did not "
            "give one"
        )
    probe = subprocess.run(["unshare", "-rn", "true"], capture_output=True)
    if probe.returncode != 0:
        sys.exit(
            "sfu_compare: refusing to run outside a private network namespace and "
            f"`unshare -rn` failed: {probe.stderr.decode(errors='replace').strip()}"
        )
    os.environ[_REEXEC_FLAG] = "1"
    os.execvp("unshare", ["unshare", "-rn", sys.executable, *argv])


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def _sysctl(path: str, value: str) -> None:
    with open(f"/proc/sys/net/ipv4/conf/{path}", "w") as f:
        f.write(value)


def setup_veth() -> None:
    """Loopback up (signaling), and the veth pair with one address per end (media)."""
    _ip("link", "set", "lo", "up")
    teardown_veth()
    _ip("link", "add", SERVER_IF, "type", "veth", "peer", "name", CLIENT_IF)
    _ip("addr", "add", f"{SERVER_ADDR}/24", "dev", SERVER_IF)
    _ip("addr", "add", f"{CLIENT_ADDR}/24", "dev", CLIENT_IF)
    _ip("link", "set", SERVER_IF, "up")
    _ip("link", "set", CLIENT_IF, "up")
    # Both addresses are local to this namespace: accept them as sources on either interface.
    for conf in ("all", "default", SERVER_IF, CLIENT_IF):
        _sysctl(f"{conf}/rp_filter", "0")
        _sysctl(f"{conf}/accept_local", "1")


def teardown_veth() -> None:
    subprocess.run(["ip", "link", "del", SERVER_IF], capture_output=True)


def _hex_ipv4(addr: str) -> str:
    """An IPv4 address as /proc/net/udp writes it (host byte order on little-endian machines)."""
    return "".join(f"{int(part):02X}" for part in reversed(addr.split(".")))


def udp_drops() -> dict[str, dict[str, int]]:
    """Datagrams the kernel dropped per UDP socket of this namespace (receive buffer full),
    keyed by side ("server" / "client" address of the veth pair) then socket inode."""
    sides = {_hex_ipv4(SERVER_ADDR): "server", _hex_ipv4(CLIENT_ADDR): "client"}
    out: dict[str, dict[str, int]] = {"server": {}, "client": {}}
    with open("/proc/net/udp") as f:
        next(f)
        for line in f:
            fields = line.split()
            side = sides.get(fields[1].split(":")[0])
            if side is not None:
                out[side][fields[9]] = int(fields[12])
    return out


def drops_between(
    before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]
) -> dict[str, int]:
    """Datagrams dropped per side between two `udp_drops()` readings (sockets alive at the end)."""
    return {
        side: sum(n - before[side].get(inode, 0) for inode, n in after[side].items())
        for side in after
    }
