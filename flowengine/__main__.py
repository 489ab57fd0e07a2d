"""``python -m flowengine``: the command line (serves by default)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
