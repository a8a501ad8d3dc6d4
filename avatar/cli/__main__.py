import sys

from avatar.cli.main import main

sys.exit(main())
