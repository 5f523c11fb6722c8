"""`python -m kerasreg` runs the `kerasreg` console script."""

import sys

from kerasreg.cli import main

sys.exit(main())
