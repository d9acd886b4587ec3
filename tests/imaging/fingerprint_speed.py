"""CPU time per photo of the fingerprint against the frozen first format-2 code, side by side.

    python -m tests.imaging.fingerprint_speed [--photos DIR] [--rounds N] [--min-side S]

Decodes the photos as the indexer does (``decode_photo`` at the model's input size), then, each round, runs
the reference and the current fingerprint on every photo in turn (their order alternating), and prints the
thread CPU milliseconds per photo of each round and their medians. Checks that the two agree, too.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from photoembed.imaging.decode import decode_photo
from photoembed.imaging.fingerprint import fingerprint
from tests.conftest import SHARED_DATA
from tests.imaging.fingerprint_reference import reference_fingerprint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=Path, default=SHARED_DATA / "photos-large")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--min-side", type=int, default=224, help="decode size (default 224, ViT-B-32's input)")
    args = parser.parse_args()
    paths = sorted(p for p in args.photos.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    images = [decode_photo(p.read_bytes(), name=p.name, min_side=args.min_side, mtime=0.0).image for p in paths]
    pixels = sum(im.width * im.height for im in images) / len(images) / 1e6
    _say(f"{len(images)} photos from {args.photos}, decoded at min_side {args.min_side}: {pixels:.2f} MP each")
    for image in images:  # warm-up (imports, OpenCV's first calls), and the agreement check
        assert fingerprint(image) == reference_fingerprint(image)
    runs: dict[str, list[float]] = {"reference": [], "current": []}
    for r in range(args.rounds):
        spent = dict.fromkeys(runs, 0.0)
        for i, image in enumerate(images):
            order = ("reference", "current") if (i + r) % 2 == 0 else ("current", "reference")
            for name in order:
                call = reference_fingerprint if name == "reference" else fingerprint
                t0 = time.thread_time()
                call(image)
                spent[name] += time.thread_time() - t0
        for name in runs:
            runs[name].append(spent[name] / len(images) * 1000)
        _say(f"round {r + 1}: reference {runs['reference'][-1]:.2f} ms, current {runs['current'][-1]:.2f} ms")
    old, new = statistics.median(runs["reference"]), statistics.median(runs["current"])
    _say(f"median CPU ms per photo: reference {old:.2f}, current {new:.2f} ({new / old:.2f}x, {old - new:.2f} less)")


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
