"""Run the mtlskit command line as `python -m mtlskit`."""

from __future__ import annotations

import sys

from mtlskit.cli import main

if __name__ == "__main__":
    sys.exit(main())
