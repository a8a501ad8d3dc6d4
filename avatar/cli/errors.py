"""What every command shares for bad input: one exception, one exit status."""
from __future__ import annotations

EXIT_USAGE = 2


class UsageError(Exception):
    """A problem with the user's input, reported as one line without a traceback."""


def usage(msg: str) -> UsageError:
    """A :class:`UsageError` to raise: ``raise usage("...")``."""
    return UsageError(msg)
