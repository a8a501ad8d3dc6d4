"""What every command shares for bad input: one exception, one exit status."""
from __future__ import annotations

EXIT_USAGE = 2


class UsageError(Exception):
    """A problem with the user's input, reported as one line without a traceback."""


def usage(msg: str) -> UsageError:
    """A :class:`UsageError` to raise: ``raise usage("...")``."""
    return UsageError(msg)


EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C


def os_error_line(err: OSError) -> str:
    """An OSError as one line that names the path: ``out/a.glb: No space left on device``."""
    why = err.strerror or str(err) or type(err).__name__
    names = [str(f) for f in (err.filename, getattr(err, "filename2", None)) if f is not None]
    if names:
        return f"{' -> '.join(names)}: {why}"
    return why


def check_output(path, what: str = "output") -> "Path":
    """Check, before any work, that ``path`` can be written: its folder exists (or can be made) and
    takes a file, and ``path`` itself is not a directory. Raises :class:`UsageError` naming the path."""
    import os
    from pathlib import Path

    path = Path(path)
    if path.is_dir():
        raise usage(f"{path}: is a directory; the {what} must be a file path")
    parent = path.parent
    probe_dir = parent
    while not probe_dir.exists():  # the folder would be made: the nearest existing ancestor must take it
        if probe_dir == probe_dir.parent:
            break
        probe_dir = probe_dir.parent
    if probe_dir.exists() and not probe_dir.is_dir():
        raise usage(f"{path}: cannot write the {what}: {probe_dir} is a file, not a folder")
    probe = probe_dir / f".{path.name}.{os.getpid()}.probe"
    try:
        with open(probe, "wb") as fh:
            fh.write(b"\0")
    except OSError as err:
        raise usage(f"{path}: cannot write the {what} ({err.strerror or err})") from None
    finally:
        try:
            probe.unlink()
        except OSError:
            pass
    return path
