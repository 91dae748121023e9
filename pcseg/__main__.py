"""``python -m pcseg``: the command line (the same as the ``pcseg`` command)."""
import sys

from .cli import main

sys.exit(main())
