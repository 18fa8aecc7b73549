"""PyInstaller entry script: the same entry point as the `xtwizard` console script."""

import sys

from xtwizard.cli import main

if __name__ == "__main__":
    sys.exit(main())
