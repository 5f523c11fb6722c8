"""The `kerasreg` console script's old import path: see `kerasreg_cli`.

The command line lives in the top-level module `kerasreg_cli`, beside this
package, so that `kerasreg --help` and a bad option are answered without
importing keras: importing any module of `kerasreg` (this one too) first runs
`kerasreg/__init__.py`, which imports keras to register kerasreg's classes.
"""

from kerasreg_cli import DATASET_CHOICES  # noqa: F401
from kerasreg_cli import DEFAULT_OUT  # noqa: F401
from kerasreg_cli import EXIT_ERROR  # noqa: F401
from kerasreg_cli import EXIT_INTERRUPTED  # noqa: F401
from kerasreg_cli import EXIT_USAGE  # noqa: F401
from kerasreg_cli import main  # noqa: F401
