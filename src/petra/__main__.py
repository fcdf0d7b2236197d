"""`python -m petra ...`: the `petra` command, for an environment whose scripts folder is not on
the PATH."""

import sys

from petra.cli import main

if __name__ == "__main__":
    sys.exit(main())
