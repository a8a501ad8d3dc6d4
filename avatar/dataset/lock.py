"""One writer per store: an exclusive, non-blocking lock beside the store.

``avatar generate`` and ``avatar verify --repair`` hold it while they write. A
second writer is refused at once (exit 2, naming the holder's pid) instead of
racing the first. The lock is ``flock`` on ``.<store name>.lock`` in the store's
folder: the kernel releases it when its holder exits, however it exits (kill -9
included), so a stale lock file never blocks anyone. A clean exit removes the
file while still holding the lock, and a taker checks that the file it locked is
still the one at that path (else it retries), so two writers never hold two
different files.
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
    made = [d for d in (lock_path(store).parent, *lock_path(store).parent.parents) if not d.exists()]
    fd = _acquire(Path(store), what)
    try:
        yield
    finally:
        path = lock_path(store)
        try:  # remove the file while still holding it: a waiter that opened it retries (see _acquire)
            path.unlink()
        except OSError:
            pass
        os.close(fd)  # closing releases the flock
        for d in made:  # folders made only for the lock: a refused run leaves nothing behind
            try:
                d.rmdir()
            except OSError:
                break


def _acquire(store: Path, what: str) -> int:
    import fcntl

    path = lock_path(store)
    for _ in range(100):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise DatasetError(f"{store}: cannot write there ({err.strerror or err}: {err.filename or path})") \
                from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "another process"
            os.close(fd)
            raise DatasetError(f"{store}: another writer ({holder}) is using this store right now; wait for it "
                               "to finish or stop it, then rerun (two runs at once would race)") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino  # not a file its last holder just removed
        except OSError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{what}, pid {os.getpid()}".encode(), 0)
            return fd
        os.close(fd)
    raise DatasetError(f"{store}: could not take the store's lock {path}")


__all__ = ["lock_path", "store_lock"]
