"""Downloads against a local HTTP server that plays the hub (no hub here): verified, resumable, honest errors."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from photoembed.config import DEFAULT_MODEL
from photoembed.errors import Cancelled, KnownError
from photoembed.ml.download import DownloadError, VerificationError
from photoembed.ml.models import ModelStore, slug
from tests.tiny_clip import TinyModel

REPO = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"  # DEFAULT_MODEL's hf_hub entry in open_clip
FILE = "open_clip_model.safetensors"


@dataclass
class Hub:
    """What the fake hub serves, and what it was asked."""

    payload: bytes = b""
    sha256: str = ""
    flip: bool = False  # serve one flipped byte (the published hash stays the true one)
    cut_after: int | None = None  # close the connection after this many bytes of a GET
    ranges: list[str | None] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tiny_model: TinyModel) -> Iterator[Hub]:
    import huggingface_hub.constants

    state = Hub(payload=tiny_model.weights_path.read_bytes())
    state.sha256 = hashlib.sha256(state.payload).hexdigest()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _body(self) -> bytes | None:
            if self.path != f"/{REPO}/resolve/main/{FILE}":
                return None
            data = bytearray(state.payload)
            if state.flip:
                data[len(data) // 2] ^= 0x01
            return bytes(data)

        def do_HEAD(self) -> None:
            body = self._body()
            if body is None:
                self.send_response(404)
                self.end_headers()
                return
            # Like the hub: a redirect to the storage, with the LFS hash and size on it.
            self.send_response(302)
            self.send_header("Location", f"{state.url}/cdn/{FILE}")
            self.send_header("X-Linked-Etag", f'"{state.sha256}"')
            self.send_header("X-Linked-Size", str(len(body)))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            body = self._body()
            if body is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            requested = self.headers.get("Range")
            state.ranges.append(requested)
            start = int(requested.removeprefix("bytes=").rstrip("-")) if requested else 0
            self.send_response(206 if requested else 200)
            if requested:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            chunk = body[start:]
            if state.cut_after is not None:
                chunk = chunk[: state.cut_after]
            self.wfile.write(chunk)
            if state.cut_after is not None:
                self.wfile.flush()
                self.close_connection = True

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", state.url)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    for var in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


pytestmark = pytest.mark.model


def test_download_is_verified_and_recorded(empty_store: ModelStore, hub: Hub) -> None:
    seen: list[tuple[int, int]] = []
    path = empty_store.download(DEFAULT_MODEL, progress=lambda done, total: seen.append((done, total)))
    assert path.read_bytes() == hub.payload
    assert path.name == FILE
    assert empty_store.weights_for(DEFAULT_MODEL) == path
    assert seen[-1] == (len(hub.payload), len(hub.payload))
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)  # one monotonic figure


def test_a_flipped_byte_is_detected_and_the_file_deleted(empty_store: ModelStore, hub: Hub) -> None:
    hub.flip = True
    with pytest.raises(VerificationError, match=r"damaged \(its sha256 is [0-9a-f]{64}, the hub publishes"):
        empty_store.download(DEFAULT_MODEL)
    assert empty_store.weights_for(DEFAULT_MODEL) is None
    folder = empty_store.downloads_dir / "files" / slug(DEFAULT_MODEL)
    assert not any(folder.iterdir())  # no final file, no partial file
    hub.flip = False
    assert empty_store.download(DEFAULT_MODEL).read_bytes() == hub.payload


def test_an_interrupted_download_resumes_with_a_range_request(empty_store: ModelStore, hub: Hub) -> None:
    hub.cut_after = len(hub.payload) // 3
    with pytest.raises(DownloadError) as caught:
        empty_store.download(DEFAULT_MODEL)
    assert caught.value.partial
    assert "run the same command again" in str(caught.value)
    partial = empty_store.downloads_dir / "files" / slug(DEFAULT_MODEL) / f"{FILE}.part"
    assert partial.stat().st_size == hub.cut_after
    assert empty_store.weights_for(DEFAULT_MODEL) is None

    hub.cut_after = None
    seen: list[tuple[int, int]] = []
    path = empty_store.download(DEFAULT_MODEL, progress=lambda done, total: seen.append((done, total)))
    assert hub.ranges[-1] == f"bytes={len(hub.payload) // 3}-"
    assert path.read_bytes() == hub.payload
    assert seen[0][0] == len(hub.payload) // 3  # progress starts where the first call stopped
    assert not partial.exists()


def test_a_partial_file_of_another_version_is_not_continued(empty_store: ModelStore, hub: Hub) -> None:
    hub.cut_after = 100
    with pytest.raises(DownloadError):
        empty_store.download(DEFAULT_MODEL)
    hub.cut_after = None
    hub.payload = hub.payload[::-1]  # the file changed upstream
    hub.sha256 = hashlib.sha256(hub.payload).hexdigest()
    assert empty_store.download(DEFAULT_MODEL).read_bytes() == hub.payload
    assert hub.ranges[-1] is None


def test_cancel_keeps_the_partial_file(empty_store: ModelStore, hub: Hub) -> None:
    cancel = threading.Event()

    def progress(done: int, total: int) -> None:
        if done:
            cancel.set()

    with pytest.raises(Cancelled):
        empty_store.download(DEFAULT_MODEL, progress=progress, cancel=cancel)
    assert empty_store.download(DEFAULT_MODEL).read_bytes() == hub.payload


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_unreachable_host_is_one_clear_sentence(empty_store: ModelStore, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    for var in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(KnownError) as caught:
        empty_store.download(DEFAULT_MODEL)
    message = str(caught.value)
    assert "cannot reach the model hub at 127.0.0.1" in message
    assert "photoembed model install FILE" in message
    assert "\n" not in message


def test_dead_proxy_is_named(empty_store: ModelStore, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    proxy = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://hub.example.invalid")
    monkeypatch.setenv("http_proxy", proxy)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    with pytest.raises(KnownError, match=rf"through the proxy {proxy} \("):
        empty_store.download(DEFAULT_MODEL)


def test_dns_failure_is_named(empty_store: ModelStore, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://hub.example.invalid")
    for var in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(KnownError, match=r"hub.example.invalid \(the name does not resolve"):
        empty_store.download(DEFAULT_MODEL)


def test_missing_file_on_the_hub(empty_store: ModelStore, hub: Hub) -> None:
    with pytest.raises(KnownError, match="holds none of"):
        empty_store.download("ViT-B-16/datacomp_xl_s13b_b90k")


def test_existing_files_are_left_alone(empty_store: ModelStore, tmp_path: Path, hub: Hub) -> None:
    first = empty_store.download(DEFAULT_MODEL)
    hub.flip = True  # a second call must not even fetch
    assert empty_store.download(DEFAULT_MODEL) == first
