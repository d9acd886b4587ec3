"""CLIP's byte-pair-encoding tokenizer without torch: the text query path of the ONNX runtime.

open_clip's ``SimpleTokenizer`` (OpenAI's CLIP tokenizer) lives in a module that imports torch, which costs
seconds per process. This is the same algorithm, reading the same vocabulary file open_clip ships
(``bpe_simple_vocab_16e6.txt.gz``), returning numpy arrays. Only the plain configuration is covered (no
additional special tokens, no reduction masks); the ONNX export records which cleaning it uses and copies
the vocabulary next to the exported towers, so a query process needs neither torch nor open_clip.
A test checks it token for token against open_clip's tokenizer.
"""

from __future__ import annotations

import functools
import gzip
import html
import itertools
import string
from collections.abc import Sequence
from pathlib import Path

import numpy as np

VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
CLEAN_TYPES = ("lower", "whitespace", "canonicalize")
_MERGES = 49152 - 256 - 2  # open_clip reads merges[1 : 49152 - 256 - 2 + 1]
_SPECIAL = ("<start_of_text>", "<end_of_text>")


@functools.cache
def _bytes_to_unicode() -> dict[int, str]:
    """CLIP's reversible byte -> printable character table."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs = bs[:]
    extra = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + extra)
            extra += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=True))


def _basic_clean(text: str) -> str:
    import ftfy

    return html.unescape(html.unescape(ftfy.fix_text(text))).strip()


def _whitespace_clean(text: str) -> str:
    return " ".join(text.split()).strip()


_PUNCTUATION = str.maketrans("", "", string.punctuation)


def _clean(text: str, kind: str) -> str:
    if kind == "lower":
        return _whitespace_clean(_basic_clean(text)).lower()
    if kind == "whitespace":
        return _whitespace_clean(_basic_clean(text))
    # canonicalize: lower case, no punctuation, one space between words
    text = _basic_clean(text).replace("_", " ").translate(_PUNCTUATION).lower()
    return " ".join(text.split()).strip()


class ClipBpeTokenizer:
    """Texts to CLIP token ids, ``int64 [n, context_length]``, as open_clip's ``SimpleTokenizer`` does.

    Args:
        vocab: the gzipped merges file (open_clip's ``bpe_simple_vocab_16e6.txt.gz``).
        context_length: tokens per text; longer texts are cut and end with the end-of-text token.
        clean: open_clip's cleaning: ``"lower"`` (its default), ``"whitespace"`` or ``"canonicalize"``.
    """

    def __init__(self, vocab: Path, *, context_length: int = 77, clean: str = "lower") -> None:
        import regex

        if clean not in CLEAN_TYPES:
            raise ValueError(f"unknown clean type {clean!r}")
        with gzip.open(vocab, "rt", encoding="utf-8") as handle:
            lines = handle.read().split("\n")[1 : _MERGES + 1]
        merges = [tuple(line.split()) for line in lines]
        byte_chars = list(_bytes_to_unicode().values())
        tokens = [*byte_chars, *(c + "</w>" for c in byte_chars), *("".join(m) for m in merges), *_SPECIAL]
        self.encoder = {token: index for index, token in enumerate(tokens)}
        self.bpe_ranks = {pair: rank for rank, pair in enumerate(merges)}
        self.sot_token_id = self.encoder[_SPECIAL[0]]
        self.eot_token_id = self.encoder[_SPECIAL[1]]
        self.context_length = context_length
        self.clean = clean
        self._cache: dict[str, list[str]] = {t: [t] for t in _SPECIAL}
        self._pattern = regex.compile(
            "|".join(_SPECIAL) + r"""|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
            regex.IGNORECASE,
        )

    def _bpe(self, token: str) -> list[str]:
        cached = self._cache.get(token)
        if cached is not None:
            return cached
        word = [*token[:-1], token[-1] + "</w>"]
        while len(word) > 1:
            first, second = min(itertools.pairwise(word), key=lambda pair: self.bpe_ranks.get(pair, _MERGES))
            if (first, second) not in self.bpe_ranks:
                break
            merged: list[str] = []
            i = 0
            while i < len(word):
                if i < len(word) - 1 and word[i] == first and word[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        self._cache[token] = word
        return word

    def encode(self, text: str) -> list[int]:
        """The ids of ``text``, without the start and end tokens."""
        byte_chars = _bytes_to_unicode()
        ids: list[int] = []
        for piece in self._pattern.findall(_clean(text, self.clean)):
            mapped = "".join(byte_chars[b] for b in piece.encode("utf-8"))
            ids.extend(self.encoder[part] for part in self._bpe(mapped))
        return ids

    def __call__(self, texts: str | Sequence[str]) -> np.ndarray:
        if isinstance(texts, str):
            texts = [texts]
        result = np.zeros((len(texts), self.context_length), dtype=np.int64)
        for row, text in enumerate(texts):
            ids = [self.sot_token_id, *self.encode(text), self.eot_token_id]
            if len(ids) > self.context_length:
                ids = ids[: self.context_length]
                ids[-1] = self.eot_token_id
            result[row, : len(ids)] = ids
        return result
