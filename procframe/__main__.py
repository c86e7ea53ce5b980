"""``python -m procframe``: the command line of :mod:`procframe.cli`."""

import sys

from procframe.cli import main

if __name__ == "__main__":
    sys.exit(main())
