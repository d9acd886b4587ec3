"""Allow ``python -m photoembed``."""

from photoembed.launcher import main

raise SystemExit(main())
