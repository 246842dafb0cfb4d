"""Is a database on a network file system, where ``flock`` and SQLite's WAL are not safe?

Linux only (it reads ``/proc/self/mounts``): the mount that holds the path,
found by the longest mount point that is a prefix of its real path, and its
file-system type. Elsewhere, or when the table cannot be read, nothing is
known and nothing is refused.
"""

from __future__ import annotations

import os
from typing import Final

__all__ = ("NETWORK_FILE_SYSTEMS", "network_file_system")

#: file-system types whose locks or shared memory do not hold between processes reliably
NETWORK_FILE_SYSTEMS: Final = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "fuse.sshfs", "afs", "ceph", "glusterfs"}
)


def _unescape(field: str) -> str:
    # /proc/mounts writes a space as \040, a tab as \011, a newline as \012, a backslash as \134
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def network_file_system(path: str, mounts: str = "/proc/self/mounts") -> str | None:
    """The network file-system type that holds *path* (``"nfs4"``, say), or ``None``."""
    try:
        with open(mounts, encoding="utf-8", errors="replace") as file:
            table = file.read()
    except OSError:
        return None
    real = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    best, kind = "", ""
    for line in table.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point, fstype = _unescape(fields[1]), fields[2]
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fstype
    return kind if kind in NETWORK_FILE_SYSTEMS else None
