"""One builder per index folder: an exclusive lock beside the target, naming its holder.

The lock is `flock` on `.<name>.lock` next to the target folder (not inside it: the folder is replaced
whole when a build completes). The kernel releases it when its process ends, however it ends, so a
lock left by a process killed with SIGKILL is simply taken over; the file only tells the next builder
who holds it (pid, host, start time, command).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from openbook.errors import OpenbookError
from openbook.progress import console


def lock_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.lock")


def _holder(handle: int) -> dict[str, object]:
    os.lseek(handle, 0, os.SEEK_SET)
    text = os.read(handle, 4096).decode("utf-8", errors="replace")
    try:
        holder = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return holder if isinstance(holder, dict) else {}


def _describe(holder: dict[str, object]) -> str:
    if not holder:
        return "a process that has not yet written its name"
    return (
        f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}: {holder.get('command', '')}"
    )


def _acquire(path: Path, target: Path) -> int:
    """The lock's file descriptor, once this process holds it; refused while another holds it."""
    while True:
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(handle)
            os.close(handle)
            raise OpenbookError(
                f"{target} is being built by another `openbook index` ({_describe(holder)}); "
                f"wait for it to finish, or stop it and run your command again (it resumes what was built)"
            ) from None
        try:  # the holder before may have removed the file as we opened it: then lock the new one
            same = os.fstat(handle).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return handle
        os.close(handle)


@contextmanager
def build_lock(target: Path) -> Iterator[None]:
    """Hold the lock of `target` (whose folder must exist) for the block; a second holder is refused,
    with the first one's pid, host, start time and command."""
    path = lock_path(target)
    handle = _acquire(path, target)
    left = _holder(handle)
    if left:  # a holder that ended without releasing it (killed): the kernel released its lock
        console.print(f"taking over the lock of {target} left by {_describe(left)} (no longer running)")
    me = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }
    os.ftruncate(handle, 0)
    os.pwrite(handle, json.dumps(me).encode(), 0)
    try:
        yield
    finally:
        os.unlink(path)  # before unlocking, so the next holder never locks a file about to go
        os.close(handle)
