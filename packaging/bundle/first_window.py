"""Time from launching a photoembed executable to its window being mapped on an X server.

Usage: ``python3 packaging/bundle/first_window.py [--runs 5] [--home DIR] COMMAND...`` (standard library only,
so the system Python can time a bundle). Each run starts COMMAND (the bundle's ``photoembed``, or an
installed one), polls the X server every 5 ms (``xdotool search --onlyvisible``) until a window titled
``photoembed`` is viewable, records the elapsed time, and terminates the app. Without ``DISPLAY`` it starts
its own ``Xvfb`` (Debian's ``xvfb``); it needs ``xdotool``. The first run counts as a cold start (the files
may not be in the page cache yet); the median of the runs after it is the warm figure.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

TITLE = "photoembed"
POLL_S = 0.005


@contextlib.contextmanager
def x_display() -> Iterator[str]:
    """The current DISPLAY, or a private Xvfb for the duration."""
    if os.environ.get("DISPLAY"):
        yield os.environ["DISPLAY"]
        return
    if not shutil.which("Xvfb"):
        sys.exit("no DISPLAY and no Xvfb: apt install xvfb x11-utils")
    for number in range(91, 120):
        if not os.path.exists(f"/tmp/.X11-unix/X{number}") and not os.path.exists(f"/tmp/.X{number}-lock"):
            break
    display = f":{number}"
    server = subprocess.Popen(
        ["Xvfb", display, "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(f"/tmp/.X11-unix/X{number}"):
            if time.monotonic() > deadline or server.poll() is not None:
                sys.exit("Xvfb did not start")
            time.sleep(0.05)
        yield display
    finally:
        server.terminate()
        server.wait(timeout=10)


def window_shown(display: str) -> bool:
    """Whether a viewable window titled TITLE exists (xdotool asks the X server; exit 0 when one matches)."""
    found = subprocess.run(
        ["xdotool", "search", "--onlyvisible", "--name", f"^{TITLE}$"],
        env={**os.environ, "DISPLAY": display},
        capture_output=True,
        check=False,
    )
    return found.returncode == 0


def one_run(command: list[str], display: str, home: str, timeout: float) -> float:
    env = {**os.environ, "DISPLAY": display, "PHOTOEMBED_HOME": home, "QT_QPA_PLATFORM": "xcb"}
    start = time.perf_counter()
    app = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        while True:
            elapsed = time.perf_counter() - start
            if app.poll() is not None:
                sys.exit(
                    f"the app exited with {app.returncode} before its window showed: "
                    f"{app.stderr.read().decode(errors='replace')[-800:] if app.stderr else ''}"
                )
            if elapsed > timeout:
                sys.exit(f"no window after {timeout:.0f} s")
            if window_shown(display):
                return time.perf_counter() - start
            time.sleep(POLL_S)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(app.pid, signal.SIGTERM)
        try:
            app.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(app.pid, signal.SIGKILL)
            app.wait()
        if app.stderr:
            app.stderr.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--home", help="the library folder (default: a new empty one)")
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if not args.command:
        parser.error("give the command that opens the window")
    if not shutil.which("xdotool"):
        sys.exit("xdotool is missing: apt install xdotool")
    with contextlib.ExitStack() as stack:
        home = args.home or stack.enter_context(tempfile.TemporaryDirectory(prefix="photoembed-fw-"))
        display = stack.enter_context(x_display())
        times = [one_run(args.command, display, home, args.timeout) for _ in range(args.runs)]
    warm = times[1:] or times
    sys.stdout.write("launch to window mapped, s: " + " ".join(f"{t:.2f}" for t in times) + "\n")
    sys.stdout.write(
        f"first (cold) run {times[0]:.2f} s; median of the next {len(warm)}: {statistics.median(warm):.2f} s\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
