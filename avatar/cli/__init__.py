"""The ``avatar`` command line (``avatar.cli.main``)."""
from avatar.cli.main import main

__all__ = ["main"]
