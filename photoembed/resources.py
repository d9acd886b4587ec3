"""Where the app's icons live: in a checkout, an installed wheel, or an app bundle.

Qt-free so that the launcher, packaging checks and tests can ask too.
"""

from __future__ import annotations

import site
import sys
import sysconfig
from pathlib import Path


def resource_dirs() -> list[Path]:
    """Candidate ``resources`` folders, most specific first."""
    here = Path(__file__).resolve().parent
    candidates = []
    bundle = getattr(sys, "_MEIPASS", None)  # a PyInstaller bundle unpacks its data files there
    if bundle:
        candidates.append(Path(bundle) / "resources")
    candidates.append(here.parent / "resources")  # a checkout (editable install)
    # A wheel installs them as data files under its scheme's prefix: the venv, /usr/local or ~/.local.
    for data in (sysconfig.get_path("data"), sys.prefix, site.getuserbase()):
        candidates.append(Path(data) / "share" / "photoembed" / "resources")
    return list(dict.fromkeys(candidates))


def resources_dir() -> Path:
    """The first folder that holds the icons (the checkout's, when none does: the error then names it)."""
    dirs = resource_dirs()
    for candidate in dirs:
        if (candidate / "icons").is_dir() and (candidate / "photoembed.svg").is_file():
            return candidate
    return dirs[1] if len(dirs) > 1 else dirs[0]
