"""Combined search queries: texts and photos, added and subtracted, optionally weighted.

Syntax (as rclip users know it)::

    photoembed search "golden retriever"
    photoembed search "2:golden retriever" + ./pool.jpg - people
    photoembed search ./holiday/IMG_0042.jpg - "0.5:rain"
    photoembed search 'dog + "rock - paper"'        # a quoted term keeps its + and -

* A query is one or more **terms** joined by ``+`` or ``-``. An operator is a ``+`` or ``-`` standing alone,
  with spaces around it, so hyphenated words (``t-shirt``, ``black-and-white``) stay text. A leading
  ``-`` makes the first term negative. Words between operators form one term: ``a dog on the beach``.
* A term is a **photo** when it names an existing file (relative to the current folder, ``~`` expanded).
  A term that looks like a path to a photo but names no file is an error ("query photo not found"), not
  silently searched as text: it starts with ``/``, ``./``, ``../``, ``~/`` or a drive letter, or ends with a
  photo extension (``.jpg``, ``.heic``, ...). Anything else is **text**.
* ``WEIGHT:`` before a term weights it: ``2:golden retriever``, ``0.5:./x.jpg``. The default weight is 1.
  To search for a text that itself starts with ``number:`` (``10:30 train``), give it a weight: ``1:10:30 train``.
* Quotes (``"..."`` or ``'...'``) group a term with its spaces and operators; the shell removes one level
  of quotes, so quote twice (``'"rock - paper"'``) to pass them through.

The query vector is the weighted sum of the terms' unit vectors (subtracted for ``-``), normalised again.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from photoembed.errors import KnownError
from photoembed.imaging.formats import is_photo_name

TermKind = Literal["text", "image"]

_WEIGHT = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*:(?!//)\s*(.*)$", re.DOTALL)
_PATH_START = re.compile(r"^(?:/|\./|\.\./|~[/\\]|\.\\|\.\.\\|[A-Za-z]:[/\\]|\\\\)")


class QueryError(KnownError):
    """A query that cannot be understood (empty, bad weight, missing photo)."""


@dataclass(frozen=True)
class QueryTerm:
    """One term of a query.

    Attributes:
        kind: ``text`` or ``image``.
        value: the text, or the photo's path as given.
        weight: a positive factor (default 1).
        sign: +1 to add the term, -1 to subtract it.
        path: the resolved photo path (``image`` terms only).
    """

    kind: TermKind
    value: str
    weight: float = 1.0
    sign: int = 1
    path: Path | None = None

    @property
    def factor(self) -> float:
        return self.sign * self.weight


@dataclass(frozen=True)
class _Token:
    text: str
    quoted: bool


def parse_query(query: str | Sequence[str], *, cwd: Path | None = None) -> list[QueryTerm]:
    """Parse a combined query into terms.

    Args:
        query: the query string, or command-line words (joined with spaces, then parsed).
        cwd: the folder relative photo paths are resolved against (default: the current folder).

    Raises:
        QueryError: empty query or term, bad weight, a photo path that names no file.
    """
    text = query if isinstance(query, str) else " ".join(query)
    base = cwd if cwd is not None else Path.cwd()
    terms: list[QueryTerm] = []
    sign = 1
    words: list[_Token] = []
    pending_operator = False

    def finish() -> None:
        if not words:
            return
        terms.append(_make_term(words, sign, base))
        words.clear()

    for token in _tokenize(text):
        if not token.quoted and token.text in ("+", "-"):
            if words:
                finish()
            elif terms or pending_operator:
                raise QueryError(f"Nothing between two operators in the query {text!r}")
            sign = 1 if token.text == "+" else -1
            pending_operator = True
            continue
        words.append(token)
        pending_operator = False
    if pending_operator:
        raise QueryError(f"The query {text!r} ends with an operator")
    finish()
    if not terms:
        raise QueryError("The query is empty")
    if all(term.sign < 0 for term in terms):
        raise QueryError("A query needs at least one term to add, not only terms to subtract")
    return terms


def _tokenize(text: str) -> list[_Token]:
    """Whitespace-separated words; a quote at the start of a word runs to its closing quote."""
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        # A word may start with a weight before its quote: 2:"golden retriever".
        weight = re.match(r"(\d+(?:\.\d*)?|\.\d+):(?=[\"'])", text[i:])
        prefix = ""
        if weight:
            prefix = weight.group(0)
            i += len(prefix)
        if text[i] in "\"'":
            end = text.find(text[i], i + 1)
            if end > 0:
                tokens.append(_Token(prefix + text[i + 1 : end], quoted=True))
                i = end + 1
                continue
        # An unmatched quote is a character like any other (a file named it's.jpg).
        start = i
        while i < n and not text[i].isspace():
            i += 1
        tokens.append(_Token(prefix + text[start:i], quoted=False))
    return tokens


def _make_term(words: list[_Token], sign: int, base: Path) -> QueryTerm:
    raw = " ".join(word.text for word in words)
    weight = 1.0
    match = _WEIGHT.match(raw)
    if match:
        weight = float(match.group(1))
        raw = match.group(2)
        if weight <= 0:
            raise QueryError(f"The weight of {raw!r} must be above 0")
    value = raw.strip()
    if not value:
        raise QueryError("A query term is empty")
    path = _photo_path(value, base)
    if path is not None:
        return QueryTerm("image", value, weight, sign, path)
    return QueryTerm("text", value, weight, sign)


def _photo_path(value: str, base: Path) -> Path | None:
    """The photo a term names, None for a text; QueryError for a photo path that names no file."""
    value = value.removeprefix("file://")
    candidate = Path(value).expanduser()
    if not candidate.is_absolute():
        candidate = base / candidate
    try:
        if candidate.is_file():
            return candidate
        is_dir = candidate.is_dir()
    except OSError:  # a name too long for the file system, say: it was a text
        is_dir = False
    looks_like_path = bool(_PATH_START.match(value)) or is_photo_name(value)
    if is_dir and looks_like_path:
        raise QueryError(f"The query photo {value} is a folder; give a photo file")
    if looks_like_path:
        raise QueryError(f"query photo not found: {value}")
    return None
