"""One writer per store: an exclusive, non-blocking lock beside the store.

``avatar generate`` and ``avatar verify --repair`` hold it while they write. A
second writer is refused at once (exit 2, naming the holder's pid) instead of
racing the first. The lock is ``flock`` on ``.<store name>.lock`` in the store's
folder: the kernel releases it when its holder exits, however it exits (kill -9
included), so a stale lock file never blocks anyone; the file itself is left in
place (deleting it would let two writers lock two different files).
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

from .store import DatasetError


def lock_path(store: Path) -> Path:
    store = Path(store)
    return store.parent / f".{store.name}.lock"


@contextlib.contextmanager
def store_lock(store: Path, what: str = "avatar generate"):
    """Hold the store's write lock for the ``with`` block; DatasetError if another process holds it."""
    import fcntl

    path = lock_path(store)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise DatasetError(f"{store}: cannot write there ({err.strerror or err}: {err.filename or path})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "another process"
            raise DatasetError(f"{store}: another writer ({holder}) is using this store right now; wait for it "
                               "to finish or stop it, then rerun (two runs at once would race)") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{what}, pid {os.getpid()}".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the flock


__all__ = ["lock_path", "store_lock"]
