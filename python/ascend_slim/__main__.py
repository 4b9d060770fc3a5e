"""``python -m ascend_slim``."""

import sys

from .cli import main

sys.exit(main())
