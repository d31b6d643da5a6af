"""``python -m container_manager.cli``: the ``cm`` console script without its installed wrapper."""

import sys

from container_manager.cli.main import main

if __name__ == "__main__":  # imported, not run, by the tree's doctest collector
    sys.exit(main())
