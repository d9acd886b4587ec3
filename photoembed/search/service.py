"""Search the library by text, by photo, or by both; the one service the CLI and the GUI call.

Text prompts: CLIP was trained on captions, and a bare label embeds worse than a caption-like sentence.
The CLIP paper (Radford et al. 2021, section 3.1.4) measured "A photo of a {label}." against the bare label
as +1.3 points of ImageNet accuracy, and open_clip's zero-shot templates are built the same way. So a short
phrase without its own framing ("dog", "a dog on the beach", "red car") is embedded with CLIP's own
template, ``a photo of a {label}.`` ("a photo of a dog.", "a photo of a red car."); the article is left
out when the phrase brings its own ("a dog on the beach", "two cats", "my bike") or is plural ("red
cars"), and is "an" before a vowel ("a photo of an apple."); a longer sentence, or a phrase that already
says what kind of picture it is ("a painting of ...", "screenshot of ..."), is embedded as typed.
See :func:`prompt_for`.

Thread contract: a :class:`SearchService` may be called from one worker thread at a time (the encoders
it is given belong to the thread that calls them); the catalog and the vector index are thread-safe. A
search is a pure reader: it never writes or rebuilds the index (the indexing thread keeps it up to date),
and sees photos committed a moment ago through the index's exact scan of the catalog's newest changes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from photoembed.errors import KnownError, ModelMismatchError
from photoembed.imaging.safe_open import read_regular
from photoembed.search.filters import SearchFilters, allowed_photo_ids
from photoembed.search.query import QueryTerm, parse_query

if TYPE_CHECKING:
    from photoembed.imaging.decode import DecodedPhoto
    from photoembed.ml.encoder import ClipEncoder
    from photoembed.storage.catalog import Catalog
    from photoembed.storage.vector_index import VectorIndex

logger = logging.getLogger(__name__)

PROMPT_TEMPLATE = "a photo of a {}."  # CLIP's (Radford et al. 2021, 3.1.4)
_BARE_TEMPLATE = "a photo of {}."
# First words that already play the article's part.
_DETERMINERS = frozenset(
    {
        "a", "an", "the", "this", "that", "these", "those", "my", "your", "his", "her", "its", "our",
        "their", "some", "any", "many", "several", "few", "one", "two", "three", "four", "five", "six",
        "seven", "eight", "nine", "ten", "no", "every", "each",
    }
)
PROMPT_MAX_WORDS = 6
# Phrases that already say what kind of picture they want are left alone.
_FRAMED = re.compile(
    r"\b(photo|photograph|picture|pic|image|shot|snapshot|selfie|portrait|painting|drawing|sketch|"
    r"illustration|render|rendering|screenshot|scan|cartoon|diagram|poster|meme)s?\b",
    re.IGNORECASE,
)

Decoder = Callable[..., "DecodedPhoto"]


@dataclass(frozen=True)
class SearchHit:
    """One result, best first in a :class:`SearchResults`."""

    photo_id: int
    path: Path
    score: float
    width: int | None
    height: int | None
    taken: float | None


@dataclass(frozen=True)
class SearchResults:
    """The hits of one query, best first, and a note for the user when there is something to say."""

    hits: list[SearchHit]
    model: str | None = None
    note: str | None = None


def prompt_for(text: str) -> str:
    """The text CLIP embeds for a query phrase: ``a photo of {phrase}.`` for short unframed phrases."""
    phrase = " ".join(text.split())
    if not phrase or len(phrase.split()) > PROMPT_MAX_WORDS:
        return phrase
    if _FRAMED.search(phrase) or phrase[-1] in ".!?":
        return phrase
    words = phrase.split()
    first, head = words[0].lower(), words[-1].lower()
    if first in _DETERMINERS or first[0].isdigit() or (_plural(head) and len(words) <= 3):
        return _BARE_TEMPLATE.format(phrase)
    if first[0] in "aeiou":
        return PROMPT_TEMPLATE.replace("a {}", "an {}").format(phrase)
    return PROMPT_TEMPLATE.format(phrase)


def _plural(word: str) -> bool:
    """A rough English plural test for the head noun of a short phrase ("cars", "puppies"; not "glass")."""
    return len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is", "ous"))


class SearchService:
    """Text, photo and combined searches over one library.

    Args:
        catalog: the library's catalog (photo rows, metadata for filters).
        vector_index: the library's FAISS index.
        encoder_provider: returns the encoder for text terms; only its text tower is used, so a text-only
            encoder keeps text search from loading the image tower. Called on first need.
        image_encoder_provider: returns the encoder for photo terms (image tower), on first need.
        decode: ``photoembed.imaging.decode.decode_photo`` or a function with its signature.
    """

    def __init__(
        self,
        *,
        catalog: Catalog,
        vector_index: VectorIndex,
        encoder_provider: Callable[[], ClipEncoder],
        image_encoder_provider: Callable[[], ClipEncoder],
        decode: Decoder,
    ) -> None:
        self.catalog = catalog
        self.vector_index = vector_index
        self._encoder_provider = encoder_provider
        self._image_encoder_provider = image_encoder_provider
        self._decode = decode

    def search(
        self,
        query: str | Sequence[str] | Sequence[QueryTerm],
        *,
        k: int = 50,
        min_score: float | None = None,
        filters: SearchFilters | None = None,
        cwd: Path | None = None,
    ) -> SearchResults:
        """Run a combined query (see :mod:`photoembed.search.query` for the syntax).

        Args:
            query: the query text, command-line words, or already parsed terms.
            k: how many results at most.
            min_score: drop results scoring below this cosine similarity.
            filters: restrict to photos matching these (folder, dates, type, size).
            cwd: the folder relative photo paths are resolved against.

        Raises:
            KnownError: a query that cannot be parsed, an unreadable query photo, a bad filter.
            ModelMismatchError: the library was indexed with another model.
            ModelUnavailableError: no weights for the model.
        """
        if k <= 0:
            raise KnownError(f"The number of results must be at least 1, not {k}")
        terms = _terms(query, cwd)
        empty = self._empty_note()
        if empty is not None:
            return SearchResults([], None, empty)
        model, vector = self._query_vector(terms)
        return self._run(model, vector, k=k, min_score=min_score, filters=filters)

    def similar(
        self,
        photo: Path,
        *,
        k: int = 50,
        min_score: float | None = None,
        filters: SearchFilters | None = None,
    ) -> SearchResults:
        """Photos that look like ``photo``, which need not be in the library."""
        return self.search(
            [QueryTerm("image", str(photo), path=Path(photo))], k=k, min_score=min_score, filters=filters
        )

    # -- internals ----------------------------------------------------------------------------------

    def _empty_note(self) -> str | None:
        counts = self.catalog.counts(None)
        if counts["photos"] == 0:
            return "The library has no photos yet: add a folder with `photoembed add FOLDER`, then `photoembed index`."
        if counts["ok"] == 0:
            return "None of the library's photos could be read, so there is nothing to search."
        return None

    def _query_vector(self, terms: Sequence[QueryTerm]) -> tuple[str, np.ndarray]:
        texts = [t for t in terms if t.kind == "text"]
        images = [t for t in terms if t.kind == "image"]
        model: str | None = None
        vectors: list[np.ndarray] = []
        factors: list[float] = []
        if texts:
            encoder = self._encoder_provider()
            model = encoder.name
            vectors.extend(encoder.encode_texts([prompt_for(t.value) for t in texts]))
            factors.extend(t.factor for t in texts)
        if images:
            encoder = self._image_encoder_provider()
            if model is not None and encoder.name != model:
                raise ModelMismatchError(f"The text model {model} and the image model {encoder.name} differ")
            model = encoder.name
            for term in images:
                vectors.append(self._photo_vector(encoder, term))
                factors.append(term.factor)
        assert model is not None  # parse_query returns at least one term
        combined = np.zeros_like(vectors[0], dtype=np.float32)
        for factor, vector in zip(factors, vectors, strict=True):
            combined += factor * vector / max(float(np.linalg.norm(vector)), 1e-12)
        norm = float(np.linalg.norm(combined))
        if norm < 1e-6:
            raise KnownError("The query's terms cancel each other out; change a weight or a term")
        return model, (combined / norm).astype(np.float32)

    def _photo_vector(self, encoder: ClipEncoder, term: QueryTerm) -> np.ndarray:
        path = term.path if term.path is not None else Path(term.value)
        stored = self._stored_vector(encoder.name, path)
        if stored is not None:
            return stored
        try:
            # The user named this path, so a link is followed once (resolve); a FIFO or device is refused.
            data, info = read_regular(path.resolve())
            mtime = info.st_mtime
        except KnownError as exc:  # not a regular file, or too large
            raise KnownError(f"Cannot use {path} as a query photo: {exc}") from exc
        except OSError as exc:
            raise KnownError(f"Cannot read the query photo {path}: {exc.strerror or exc}") from exc
        try:
            decoded = self._decode(data, name=path.name, min_side=encoder.image_size, mtime=mtime)
        except KnownError as exc:  # DecodeError: empty, not an image, damaged, too large
            raise KnownError(f"Cannot use {path} as a query photo: {exc}") from exc
        pixels = encoder.prepare(decoded.image, **decoded.geometry)
        return np.asarray(encoder.encode_images(pixels[None])[0], dtype=np.float32)

    def _stored_vector(self, model: str, path: Path) -> np.ndarray | None:
        """A library photo's own vector, when its file is unchanged since it was indexed (no model call)."""
        try:
            resolved = path.resolve()
            stat = resolved.stat()
        except OSError:
            return None
        photo = self.catalog.photo_by_path(resolved)
        if (
            photo is None
            or not photo.ok
            or photo.content_hash is None
            or photo.size != stat.st_size
            or photo.mtime_ns != stat.st_mtime_ns
        ):
            return None
        return self.catalog.embedding_for_hash(model, photo.content_hash)

    def _run(
        self, model: str, vector: np.ndarray, *, k: int, min_score: float | None, filters: SearchFilters | None
    ) -> SearchResults:
        allowed = None
        if filters is not None and not filters.is_empty():
            allowed = allowed_photo_ids(self.catalog, filters)
            if allowed.size == 0:
                return SearchResults([], model, "No photo matches the filters.")
        hits = self.vector_index.search(model, vector[None, :], k, allowed_ids=allowed)[0]
        if min_score is not None:
            hits = [(pid, score) for pid, score in hits if score >= min_score]
        photos = self.catalog.photos_by_ids([pid for pid, _ in hits])
        results = []
        for pid, score in hits:
            photo = photos.get(pid)
            if photo is None:  # removed since the index was read; never show a stale row
                continue
            results.append(SearchHit(pid, photo.path, score, photo.info.width, photo.info.height, photo.info.taken))
        note = None
        if not results:
            counts = self.catalog.counts(model)
            if counts["embedded"] == 0:
                note = f"No photo is indexed with {model} yet: run `photoembed index`."
            elif min_score is not None:
                note = f"No result scores {min_score} or more."
        return SearchResults(results, model, note)


def _terms(query: str | Sequence[str] | Sequence[QueryTerm], cwd: Path | None) -> list[QueryTerm]:
    if isinstance(query, str):
        return parse_query(query, cwd=cwd)
    items = list(query)
    terms = [item for item in items if isinstance(item, QueryTerm)]
    if terms and len(terms) == len(items):
        return terms
    return parse_query([str(item) for item in items], cwd=cwd)
