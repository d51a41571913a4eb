"""CPU time and memory of a whole process tree, and the machine's load, from /proc; a
process's CPU weight, through /proc."""

from __future__ import annotations

import os
import time
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: the fields start after the last ')'.
    return text.rsplit(")", 1)[1].split()


def tree(root: int) -> list[int]:
    """``root`` and every descendant alive now."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cpu_seconds(root: int) -> float:
    """User + system CPU of the tree's processes (all threads, exited ones included)."""
    total = 0
    for pid in tree(root):
        fields = _stat_fields(pid)
        if fields is not None:
            # utime, stime, cutime, cstime (fields 14-17 of proc(5); the list starts at field 3).
            total += sum(int(v) for v in fields[11:15])
    return total / TICK


def rss_bytes(root: int) -> int:
    """Resident set size summed over the tree."""
    total = 0
    for pid in tree(root):
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
        except (OSError, ValueError, IndexError):
            continue
    return total


def load_average() -> float:
    """The machine's 1-minute load average (every process on the host, this benchmark's too)."""
    return os.getloadavg()[0]


def lower_priority(pid: int, nice: int) -> str:
    """Give a process (all its threads) a lower CPU weight; returns how it was done.

    With autogroup scheduling the weight that counts is the process's session group's, set
    through /proc/<pid>/autogroup (raising it needs no privilege); otherwise each thread's nice.
    """
    if nice == 0:
        return "none"
    try:
        with open("/proc/sys/kernel/sched_autogroup_enabled") as f:
            autogroup = f.read().strip() == "1"
    except OSError:
        autogroup = False
    if autogroup:
        # Without CAP_SYS_ADMIN the kernel takes one such change per 100 ms, machine-wide
        # (EAGAIN otherwise): the subscribers starting together take turns.
        for _ in range(100):
            try:
                with open(f"/proc/{pid}/autogroup", "w") as f:
                    f.write(str(nice))
                return f"autogroup nice {nice}"
            except BlockingIOError:
                time.sleep(0.11)
        raise TimeoutError(f"could not set the autogroup nice of process {pid}")
    for tid in os.listdir(f"/proc/{pid}/task"):
        os.setpriority(os.PRIO_PROCESS, int(tid), nice)
    return f"nice {nice} on every thread"
