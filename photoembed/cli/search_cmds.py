"""``search`` and ``similar``: find photos by text, by photo, or both."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from photoembed.cli.output import emit_json, fail
from photoembed.search.filters import SearchFilters, parse_date, parse_formats

if TYPE_CHECKING:  # imported by the handlers: other commands need not load it
    from photoembed.search.service import SearchResults, SearchService

LibraryFactory = Callable[[], Any]

QUERY_HELP = (
    "one or more terms joined by + and -; each a text or a path to a photo, optionally weighted: "
    '"2:golden retriever" + ./pool.jpg - people'
)


def register(subparsers: Any, bench_subparsers: Any) -> None:
    search = subparsers.add_parser(
        "search",
        help="find photos by text, by photo, or both",
        description="Find photos by text, by photo, or by a combination: " + QUERY_HELP + ".",
    )
    search.add_argument("query", nargs="+", metavar="QUERY", help=QUERY_HELP)
    _add_common(search)
    search.set_defaults(handler=cmd_search)

    similar = subparsers.add_parser(
        "similar", help="find photos that look like a photo (which need not be in the library)"
    )
    similar.add_argument("photo", type=Path, metavar="PHOTO")
    _add_common(similar)
    similar.set_defaults(handler=cmd_similar)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-k", type=_positive_int, default=50, help="how many results (default 50)")
    parser.add_argument(
        "--min-score", type=float, metavar="S", help="hide results scoring below S (scores vary by query)"
    )
    group = parser.add_argument_group("filters")
    group.add_argument("--folder", type=Path, metavar="DIR", help="only photos under DIR")
    group.add_argument("--from", dest="date_from", metavar="DATE", help="taken on or after DATE (YYYY[-MM[-DD]])")
    group.add_argument("--to", dest="date_to", metavar="DATE", help="taken on or before DATE (YYYY[-MM[-DD]])")
    group.add_argument("--type", dest="types", metavar="TYPES", help="file types, e.g. jpeg,png,heic,raw")
    group.add_argument("--min-width", type=_positive_int, metavar="PX", help="at least PX pixels wide")
    group.add_argument("--min-height", type=_positive_int, metavar="PX", help="at least PX pixels tall")
    group.add_argument("--min-megapixels", type=float, metavar="M", help="at least M megapixels")


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def filters_from_args(args: argparse.Namespace) -> SearchFilters:
    return SearchFilters(
        folder=args.folder,
        taken_from=parse_date(args.date_from) if args.date_from else None,
        taken_to=parse_date(args.date_to, end=True) if args.date_to else None,
        formats=parse_formats(args.types) if args.types else (),
        min_width=args.min_width,
        min_height=args.min_height,
        min_megapixels=args.min_megapixels,
    )


def make_service(library: Any) -> SearchService:
    from photoembed.imaging.decode import decode_photo
    from photoembed.search.service import SearchService

    return SearchService(
        catalog=library.catalog,
        vector_index=library.vector_index,
        encoder_provider=library.text_encoder,
        image_encoder_provider=library.encoder,
        decode=decode_photo,
    )


def cmd_search(args: argparse.Namespace, library_factory: LibraryFactory) -> int:
    filters = filters_from_args(args)
    service = make_service(library_factory())
    results = service.search(args.query, k=args.k, min_score=args.min_score, filters=filters)
    return _print(results, as_json=args.json)


def cmd_similar(args: argparse.Namespace, library_factory: LibraryFactory) -> int:
    photo = args.photo.expanduser()
    if not photo.is_file():
        return fail(f"query photo not found: {args.photo}")
    filters = filters_from_args(args)
    service = make_service(library_factory())
    results = service.similar(photo, k=args.k, min_score=args.min_score, filters=filters)
    return _print(results, as_json=args.json)


def _iso(timestamp: float | None) -> str | None:
    """Local time, as EXIF records it: ``2023-06-01T14:30:00``."""
    if timestamp is None:
        return None
    return dt.datetime.fromtimestamp(timestamp).isoformat(timespec="seconds")


def _print(results: SearchResults, *, as_json: bool) -> int:
    if results.note:
        sys.stderr.write(results.note + "\n")
    if as_json:
        emit_json(
            [
                {
                    "path": str(hit.path),
                    "score": round(hit.score, 4),
                    "width": hit.width,
                    "height": hit.height,
                    "taken": _iso(hit.taken),
                }
                for hit in results.hits
            ]
        )
    else:
        for hit in results.hits:
            print(f"{hit.score:.4f}\t{hit.path}")
    return 0
