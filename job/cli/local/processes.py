"""What /proc says about local processes: the one place the local tooling (the cluster
launcher, the tests' job runner) reads it, for liveness, sessions and process groups."""
from __future__ import annotations

import os
from typing import Iterator, Optional


def _stat(pid) -> Optional[list]:
    """The fields of /proc/PID/stat after ``pid (comm)``: state, ppid, pgrp, session, ..."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            stat = handle.read()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()  # comm may hold spaces and parentheses


def alive(pid: int) -> bool:
    """Running, and not a zombie waiting to be collected."""
    fields = _stat(pid) if pid else None
    return fields is not None and fields[0] != "Z"


def cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read()
    except OSError:
        return b""


def live_processes() -> Iterator[tuple]:
    """(pid, stat fields) of every live, non-zombie process."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(entry)
            if fields is not None and fields[0] != "Z":
                yield int(entry), fields


def session_members(session_id: int) -> list:
    return [pid for pid, fields in live_processes() if int(fields[3]) == session_id]


def group_members(pgid: int, marker: bytes) -> list:
    """The live processes of process group ``pgid`` whose command line holds ``marker``."""
    return [pid for pid, fields in live_processes() if int(fields[2]) == pgid and marker in cmdline(pid)]
