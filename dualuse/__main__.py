"""``python -m dualuse``: the same as the ``dualuse`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
