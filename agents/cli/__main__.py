"""``python -m agents.cli``: the ``textenv`` console script."""

import sys

from agents.cli import main

sys.exit(main())
