"""``python -m container_manager.cli``: the ``cm`` console script without its installed wrapper."""

import sys

from container_manager.cli.main import main

sys.exit(main())
