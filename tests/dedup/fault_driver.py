"""Child process for the fault-injection tests: one removal or undo, killed at a chosen step boundary.

    python -m tests.dedup.fault_driver CATALOG trash|undo KILL_AT EXDEV [cli]

Each step boundary the service reports is printed (flushed) as it is reached; at the KILL_AT-th one
(1-based; 0: never) the process ends with ``os._exit`` at once: no ``finally``, no ``atexit``, no catalog
close, as a ``kill -9`` would. EXDEV=1 makes every rename between two folders fail with EXDEV, so the
cross-mount copy path is the one exercised. With ``cli`` the real commands run
(``photoembed dupes --tier identical --trash-suggested --yes``, ``photoembed undo``) on the library of
$PHOTOEMBED_HOME, whose service gets the checkpoint; otherwise the service runs on CATALOG directly.
XDG_DATA_HOME (the trash) comes from the environment.
"""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path
from typing import Any

KILLED = 86


def main(argv: list[str]) -> int:
    catalog_path, phase, kill_at, exdev = argv[0], argv[1], int(argv[2]), argv[3] == "1"
    through_cli = len(argv) > 4 and argv[4] == "cli"
    from photoembed.config import Settings
    from photoembed.dedup import trash
    from photoembed.dedup.service import DedupService
    from photoembed.storage.catalog import Catalog

    if exdev:
        real = trash._rename

        def rename(src: Path, dst: Path) -> None:
            if src.parent != dst.parent:
                raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
            real(src, dst)

        trash._rename = rename

    reached = 0

    def checkpoint(name: str) -> None:
        nonlocal reached
        reached += 1
        sys.stdout.write(f"step {name}\n")
        sys.stdout.flush()
        if reached == kill_at:
            os._exit(KILLED)

    if through_cli:
        from photoembed.cli import dupes_cmds
        from photoembed.cli.main import main as cli

        def service_for(library: Any, *, with_indexer: bool = False) -> DedupService:
            return DedupService(
                catalog=library.catalog,
                settings=library.settings,
                trash=trash.SystemTrash(),
                indexer=library.indexer() if with_indexer else None,
                checkpoint=checkpoint,
            )

        dupes_cmds.service_for = service_for  # the command's own service, with the checkpoint
        args = ["dupes", "--tier", "identical", "--trash-suggested", "--yes"] if phase == "trash" else ["undo"]
        return cli(args)
    catalog = Catalog.open(Path(catalog_path))
    service = DedupService(catalog=catalog, settings=Settings(), trash=trash.SystemTrash(), checkpoint=checkpoint)
    if phase == "trash":
        service.execute(service.plan_trash(service.find_clusters(tier="identical")))
    else:
        service.undo()
    catalog.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
