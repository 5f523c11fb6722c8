"""`python -m kerasreg` runs the `kerasreg` console script.

Python imports the package (and so keras) before this file runs; the console
script `kerasreg`, or `python -m kerasreg_cli`, parses the arguments first and
answers `--help` or a bad option without importing keras.
"""

import sys

from kerasreg_cli import main

sys.exit(main())
