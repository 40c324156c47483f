"""``python -m fwprep``: the fwprep command line."""

import sys

from fwprep.cli import main

sys.exit(main())
