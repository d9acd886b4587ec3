"""The app bundle's entry point: the same launcher as the installed ``photoembed`` command."""

import sys

from photoembed.launcher import main

if __name__ == "__main__":
    sys.exit(main())
