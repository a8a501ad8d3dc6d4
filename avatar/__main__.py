"""``python -m avatar ...`` is the ``avatar`` command."""
import sys

from avatar.cli import main

sys.exit(main())
