"""Downloading one weights file from a Hugging Face Hub endpoint: verified, resumable, with honest errors.

huggingface_hub's client was not good enough for this: it never checks the file it wrote, it deletes its
partial file when a call ends (so nothing resumes across calls), its progress goes backwards for Xet-backed
files, and a dead proxy costs half a minute of retries followed by a message that blames the hub. This module
speaks the two requests the hub's ``resolve`` endpoint needs with the standard library:

1. ``HEAD`` without following the redirect: the hub answers with the file's size and its published
   hash (``X-Linked-Etag``: the sha256 of an LFS file; ``ETag``: the git blob sha1 of a small one);
2. ``GET`` with ``Range: bytes=N-`` to continue a partial file kept beside the target (``.part``, with a
   ``.part.json`` naming the hash it belongs to, so a changed file upstream restarts from zero).

The finished file is hashed and compared before it replaces anything; a mismatch deletes it. Progress is
reported as (bytes on disk, total), which never goes backwards. Proxies come from the usual environment
variables (``HTTPS_PROXY``...), as urllib reads them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path

from photoembed.errors import Cancelled, KnownError

logger = logging.getLogger(__name__)

_CHUNK = 1024 * 1024
_TIMEOUT_S = 20.0
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX40 = re.compile(r"^[0-9a-f]{40}$")

ProgressCallback = Callable[[int, int], None]


class NotOnServer(KnownError):
    """The server has no such file (404): the caller may try another file name."""


class DownloadError(KnownError):
    """The transfer failed; ``partial`` tells whether a partial file was kept for the next call to resume."""

    def __init__(self, message: str, *, partial: bool = False) -> None:
        super().__init__(message)
        self.partial = partial


class VerificationError(DownloadError):
    """The downloaded file does not match the published hash (it was deleted)."""


@dataclass(frozen=True)
class RemoteFile:
    """What the server publishes about a file before it is fetched."""

    size: int | None
    sha256: str | None
    git_sha1: str | None


def fetch(
    url: str,
    target: Path,
    *,
    what: str,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    timeout_s: float = _TIMEOUT_S,
    expected_sha256: str | None = None,
) -> Path:
    """Download ``url`` into ``target``, verified, resuming a partial file from an earlier call.

    Args:
        url: the file's ``resolve`` URL.
        target: the final path; ``target.part`` holds the partial file meanwhile.
        what: how messages name the file (the model name).
        progress: called with (bytes on disk, total bytes); monotonic.
        cancel: set it to stop; :class:`Cancelled` is raised and the partial file kept.
        expected_sha256: a hash known beforehand (a manifest, a URL that names it); checked as well.

    Raises:
        NotOnServer: 404.
        VerificationError: the file does not match its published sha256 / git sha1 (deleted).
        DownloadError: network, proxy, DNS or HTTP failure, one sentence.
        Cancelled: when ``cancel`` was set.
    """
    remote = _head(url, what=what, timeout_s=timeout_s)
    if expected_sha256 is not None:
        if remote.sha256 is not None and remote.sha256 != expected_sha256.lower():
            raise VerificationError(
                f"The server publishes sha256 {remote.sha256} for {what}, not the expected {expected_sha256}"
            )
        remote = RemoteFile(size=remote.size, sha256=expected_sha256.lower(), git_sha1=None)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    meta = target.with_name(target.name + ".part.json")
    identity = {"url": url, "sha256": remote.sha256, "git_sha1": remote.git_sha1, "size": remote.size}
    if partial.exists() and _read_meta(meta) != identity:
        logger.info("%s: the partial download belongs to another version of the file; starting over", what)
        partial.unlink()
    meta.write_text(json.dumps(identity), encoding="utf-8")
    offset = partial.stat().st_size if partial.exists() else 0
    if remote.size is not None and offset > remote.size:
        partial.unlink()
        offset = 0
    total = remote.size or 0
    if progress is not None:
        progress(offset, total)
    if remote.size is None or offset < remote.size:
        _get(url, partial, offset=offset, total=total, what=what, progress=progress, cancel=cancel, timeout_s=timeout_s)
    _verify(partial, remote, what=what, meta=meta)
    os.replace(partial, target)
    meta.unlink(missing_ok=True)
    return target


def _head(url: str, *, what: str, timeout_s: float) -> RemoteFile:
    request = urllib.request.Request(url, method="HEAD", headers=_headers())
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=timeout_s) as response:
            headers = response.headers
    except urllib.error.HTTPError as exc:
        if exc.code in (301, 302, 303, 307, 308):
            headers = exc.headers  # the hub's metadata is on the redirect itself
        else:
            raise _http_error(exc, what) from exc
    except (OSError, HTTPException) as exc:
        raise _network_error(exc, url, what) from exc
    linked = _clean_etag(headers.get("X-Linked-Etag"))
    etag = _clean_etag(headers.get("ETag"))
    size_text = headers.get("X-Linked-Size") or headers.get("Content-Length")
    size = int(size_text) if size_text and size_text.isdigit() else None
    sha256 = linked if linked and _HEX64.match(linked) else (etag if etag and _HEX64.match(etag) else None)
    git_sha1 = etag if sha256 is None and etag and _HEX40.match(etag) else None
    if sha256 is None and git_sha1 is None:
        logger.warning("%s: the server publishes no hash for %s; only its size is checked", what, url)
    return RemoteFile(size=size, sha256=sha256, git_sha1=git_sha1)


def _get(
    url: str,
    partial: Path,
    *,
    offset: int,
    total: int,
    what: str,
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
    timeout_s: float,
) -> None:
    headers = _headers()
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # the range starts at the end: the partial file is complete
            return
        raise _http_error(exc, what) from exc
    except (OSError, HTTPException) as exc:
        raise _network_error(exc, url, what) from exc
    done = offset
    try:
        with response, partial.open("ab" if response.status == 206 else "wb") as out:
            if response.status != 206:
                done = 0  # the server ignored the range: start over
            while True:
                if cancel is not None and cancel.is_set():
                    raise Cancelled(f"Download of {what} cancelled (the part fetched is kept; run it again to resume)")
                chunk = response.read(_CHUNK)
                if not chunk:
                    break
                out.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, max(total, done))
            out.flush()
            os.fsync(out.fileno())
    except (OSError, HTTPException) as exc:
        raise DownloadError(
            f"The download of {what} was interrupted after {done} of {total or '?'} bytes ({_reason(exc)}); "
            "run the same command again to continue where it stopped",
            partial=True,
        ) from exc
    if total and done < total:
        raise DownloadError(
            f"The download of {what} stopped after {done} of {total} bytes; run the same command again to "
            "continue where it stopped",
            partial=True,
        )


def _verify(partial: Path, remote: RemoteFile, *, what: str, meta: Path) -> None:
    size = partial.stat().st_size
    problem = None
    if remote.size is not None and size != remote.size:
        problem = f"it has {size} bytes, the server announced {remote.size}"
    elif remote.sha256 is not None:
        digest = file_sha256(partial)
        if digest != remote.sha256:
            problem = f"its sha256 is {digest}, the hub publishes {remote.sha256}"
    elif remote.git_sha1 is not None:
        digest = _git_blob_sha1(partial)
        if digest != remote.git_sha1:
            problem = f"its git hash is {digest}, the hub publishes {remote.git_sha1}"
    if problem is not None:
        partial.unlink(missing_ok=True)
        meta.unlink(missing_ok=True)
        raise VerificationError(f"The downloaded weights of {what} are damaged ({problem}); the file was deleted")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as reader:
        while chunk := reader.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _git_blob_sha1(path: Path) -> str:
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode(), usedforsecurity=False)
    with path.open("rb") as reader:
        while chunk := reader.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _headers() -> dict[str, str]:
    headers = {"User-Agent": "photoembed", "Accept-Encoding": "identity"}
    token = os.environ.get("HF_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _clean_etag(value: str | None) -> str | None:
    if not value:
        return None
    value = value.strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"').lower() or None


def _read_meta(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _http_error(exc: urllib.error.HTTPError, what: str) -> KnownError:
    if exc.code == 404:
        return NotOnServer(f"The hub has no such file for {what} ({exc.url})")
    if exc.code == 407:
        return DownloadError(f"Could not download {what}: the proxy asks for credentials (HTTP 407)")
    if exc.code in (401, 403):
        return DownloadError(
            f"Could not download {what}: the hub refused access (HTTP {exc.code}; a gated model needs HF_TOKEN)"
        )
    return DownloadError(f"Could not download {what}: the server answered HTTP {exc.code} {exc.reason}")


def _network_error(exc: BaseException, url: str, what: str) -> DownloadError:
    host = urllib.parse.urlsplit(url).hostname or url
    proxy = _proxy_for(url)
    reason = _reason(exc)
    if proxy is not None:
        where = f"the proxy {proxy} ({reason})"
        return DownloadError(
            f"Could not download {what}: this machine cannot reach the model hub through {where}; check the "
            "proxy settings (HTTPS_PROXY), or copy the weights file here and use `photoembed model install FILE`"
        )
    if _is_dns_failure(exc):
        where = f"{host} (the name does not resolve: no DNS or no network)"
    else:
        where = f"{host} ({reason})"
    return DownloadError(
        f"Could not download {what}: this machine cannot reach the model hub at {where}; copy the weights file "
        "here from a machine with internet and use `photoembed model install FILE`"
    )


def _proxy_for(url: str) -> str | None:
    parts = urllib.parse.urlsplit(url)
    if parts.hostname and urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)


def _is_dns_failure(exc: BaseException) -> bool:
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, socket.gaierror):
            return True
        current = getattr(current, "reason", None) if isinstance(current, urllib.error.URLError) else current.__cause__
    return False


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        return _reason(exc.reason) if isinstance(exc.reason, BaseException) else str(exc.reason)
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(text)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Keep the hub's first answer: its headers carry the file's hash and size."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None
