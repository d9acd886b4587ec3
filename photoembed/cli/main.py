"""``photoembed`` command line: argument parsing, logging set-up and dispatch to command modules.

Each command module defines ``register(subparsers, bench_subparsers)``; its handlers take
``(args, library_factory)`` and return an exit code. The library is opened only by commands that need it,
so ``photoembed --help`` stays instant (no torch, no faiss, no SQLite).

Benchmarks are listed in :data:`BENCHMARKS` and their modules imported only when that benchmark runs
(:func:`parse_args`): they import numpy, Pillow and the like, which ``photoembed index`` with nothing to do
should not pay for.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import sqlite3
import sys
from collections.abc import Callable, Sequence
from typing import Any

from photoembed import __version__
from photoembed.cli.output import fail
from photoembed.errors import KnownError
from photoembed.ml.runtime import prepare_environment

logger = logging.getLogger(__name__)

COMMAND_MODULES: tuple[str, ...] = (
    "photoembed.cli.library_cmds",
    "photoembed.cli.model_cmds",
    "photoembed.cli.search_cmds",
    "photoembed.cli.watch_cmds",
    "photoembed.cli.dupes_cmds",
)

Handler = Callable[[argparse.Namespace, Callable[[], Any]], int]

#: ``photoembed bench NAME``: the module whose ``register_bench(bench_subparsers)`` adds NAME's parser (a
#: module may add several), and the help line ``photoembed bench --help`` shows without importing it.
BENCHMARKS: dict[str, tuple[str, str]] = {
    "ingest": ("photoembed.bench.ingest", "indexing throughput against the CPU-bound limit and a naive pipeline"),
    "rescan": (
        "photoembed.bench.rescan", "time of a sync with nothing changed (folder listing + catalog comparison)"
    ),
    "soak": (
        "photoembed.bench.soak", "a live library under thousands of change batches with searches from another thread"
    ),
    "parity": (
        "photoembed.bench.parity",
        "cosine between the indexer's embeddings and open_clip's reference, per photo and model",
    ),
    "search": (
        "photoembed.bench.search", "index build/load time, query latency, recall@10 and RSS at 10k/100k/1M vectors"
    ),
    "watch-stress": (
        "photoembed.bench.watch_stress",
        "file-system storms against the watcher; prints time to settle and index == disk",
    ),
    "dedup": ("photoembed.bench.dedup", "duplicate clustering time and peak memory at scale"),
    "dedup-eval": ("photoembed.bench.dedup", "duplicate precision/recall on labelled photos"),
    "keeper-eval": ("photoembed.bench.keeper_eval", "keeper accuracy on camera originals and their copies"),
}


#: A benchmark that a layer above the CLI provides (the GUI's): its name, help line and entry point, which
#: receives the benchmark's own arguments.
ExternalBenchmark = tuple[str, str, Callable[[list[str]], int]]


def build_parser(
    external_benchmarks: Sequence[ExternalBenchmark] = (), *, benchmark: str | None = None
) -> argparse.ArgumentParser:
    """The whole command line. Of the :data:`BENCHMARKS`, only ``benchmark`` (if named) gets its real parser;
    the others are stand-ins that take any arguments (:func:`parse_args` parses again with the one chosen).
    """
    parser = argparse.ArgumentParser(
        prog="photoembed",
        description=(
            "Private, offline photo search and duplicate finder. Run without arguments to open the app."
        ),
    )
    parser.add_argument("--version", action="version", version=f"photoembed {__version__}")
    _add_global_options(parser, top_level=True)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    bench = subparsers.add_parser("bench", help="benchmarks that print measured figures")
    bench_subparsers = bench.add_subparsers(dest="bench", metavar="BENCHMARK", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers, bench_subparsers)
    if benchmark in BENCHMARKS:
        importlib.import_module(BENCHMARKS[benchmark][0]).register_bench(bench_subparsers)
    for name, (_, help_text) in BENCHMARKS.items():
        if name not in bench_subparsers.choices:
            stand_in = bench_subparsers.add_parser(name, help=help_text, add_help=False, prefix_chars="\x00")
            stand_in.add_argument("bench_args", nargs=argparse.REMAINDER)
            stand_in.set_defaults(lazy_benchmark=name)
    for name, help_text, entry in external_benchmarks:
        # Its arguments are its own (including --help): taken verbatim, never parsed here.
        external = bench_subparsers.add_parser(name, help=help_text, add_help=False, prefix_chars="\x00")
        external.add_argument("bench_args", nargs=argparse.REMAINDER)
        external.set_defaults(handler=_run_external(entry))
    for command in _subcommands(parser):
        if command.add_help:  # an external benchmark parses its own options
            _add_global_options(command, top_level=False)
    return parser


def parse_args(
    argv: Sequence[str], external_benchmarks: Sequence[ExternalBenchmark] = ()
) -> argparse.Namespace:
    """Parse a command line; a benchmark's module is imported (and its options parsed) only when it runs."""
    args = build_parser(external_benchmarks).parse_args(list(argv))
    chosen = getattr(args, "lazy_benchmark", None)
    if chosen is not None:
        args = build_parser(external_benchmarks, benchmark=chosen).parse_args(list(argv))
    return args


def _add_global_options(parser: argparse.ArgumentParser, *, top_level: bool) -> None:
    """``--home``, ``--json`` and ``-v``: accepted before the command and after it alike.

    On a subcommand they default to SUPPRESS, so that ``photoembed --json status`` is not reset by the
    subcommand's own (absent) ``--json``; the top level holds the defaults.
    """
    group = parser.add_argument_group("options for every command")
    group.add_argument(
        "--home",
        metavar="DIR",
        default=None if top_level else argparse.SUPPRESS,
        help="keep all of photoembed's data, cache and config under DIR (default: $PHOTOEMBED_HOME, "
        "else the platform's folders)",
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=False if top_level else argparse.SUPPRESS,
        help="machine-readable output for scripts",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0 if top_level else argparse.SUPPRESS,
        help="more log output (-vv: debug)",
    )


def _subcommands(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every subcommand parser below ``parser`` (``bench ingest`` included), depth first."""
    found: list[argparse.ArgumentParser] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):  # aliases map to the same parser
                found.append(sub)
                found.extend(_subcommands(sub))
    return found


def _run_external(entry: Callable[[list[str]], int]) -> Handler:
    def handler(args: argparse.Namespace, library_factory: Callable[[], Any]) -> int:
        forwarded = list(args.bench_args)
        if args.home:
            forwarded = ["--home", args.home, *forwarded]
        return entry(forwarded)

    return handler


# sqlite3's primary result codes (https://sqlite.org/rescode.html), read from the exception's own field.
_SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_CANTOPEN, _SQLITE_NOTADB = 8, 10, 11, 13, 14, 26


def _catalog_path(home: str | None) -> str:
    from photoembed.config import Paths

    try:
        return str(Paths.resolve(home).catalog)
    except OSError:
        return "the catalog"


def catalog_problem(exc: sqlite3.Error, catalog: str) -> str:
    """One sentence for an SQLite failure, chosen by its result code (never by its message)."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    if primary in (_SQLITE_NOTADB, _SQLITE_CORRUPT):
        return (
            f"the catalog {catalog} is damaged (not a readable database); restore it from a backup, or move "
            "it away, then `photoembed add` your folders and `photoembed index` to rebuild it"
        )
    if primary == _SQLITE_FULL:
        return f"the disk holding {catalog} is full; free some space and run the command again"
    if primary in (_SQLITE_READONLY, _SQLITE_CANTOPEN):
        return (
            f"cannot write the catalog {catalog} (read-only folder or file system?); make it writable, "
            "or choose another home with --home"
        )
    if primary == _SQLITE_IOERR:
        return f"the disk holding {catalog} failed to read or write ({exc}); check the drive"
    return f"the catalog {catalog} cannot be used: {exc}"


def environment_problem(exc: OSError) -> str | None:
    """One sentence for an OSError that is the environment's doing (full disk, read-only), else None."""
    where = f" ({exc.filename})" if exc.filename else ""
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return f"the disk is full{where}; free some space and run the command again"
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"photoembed cannot write{where}: {exc.strerror}; make it writable, or use another --home"
    return None


def configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def main(argv: Sequence[str] | None = None, *, external_benchmarks: Sequence[ExternalBenchmark] = ()) -> int:
    """Run one command. ``external_benchmarks`` come from the launcher (the CLI cannot import the GUI)."""
    args = parse_args(sys.argv[1:] if argv is None else argv, external_benchmarks)
    configure_logging(args.verbose)
    # Before any OpenMP runtime loads (faiss's or torch's): spin-waiting threads starve the rest.
    prepare_environment()
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        build_parser(external_benchmarks).print_help()
        return 0

    opened: list[Any] = []

    def library_factory() -> Any:
        from photoembed.config import Paths
        from photoembed.library import Library

        if not opened:
            opened.append(Library(Paths.resolve(args.home)))
        return opened[0]

    try:
        return handler(args, library_factory)
    except KnownError as exc:
        return fail(str(exc))
    except BrokenPipeError:
        # `photoembed search ... | head` closes stdout early; that is not an error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except sqlite3.Error as exc:
        return fail(catalog_problem(exc, _catalog_path(args.home)))
    except OSError as exc:
        sentence = environment_problem(exc)
        if sentence is None:
            raise
        return fail(sentence)
    except KeyboardInterrupt:
        sys.stderr.write("\nInterrupted.\n")
        return 130
    finally:
        for library in opened:
            try:
                library.close()
            except (sqlite3.Error, OSError) as exc:  # the command's own outcome was already told
                logger.warning("Could not close the library cleanly: %s", exc)
