"""English text that ships with CPython, as characters over ``a–z`` and space (27 symbols).

The corpus is the help text of :mod:`pydoc_data.topics` followed by the docstrings of the standard library's
Python modules (read with :func:`ast.get_docstring`, skipping ``test/``, ``idlelib/``, ``site-packages/`` and
``lib2to3`` fixtures), normalised as text8 is: lower case, every run of characters outside ``a–z`` becomes
one space. Nothing is downloaded. The text differs slightly between Python versions, so :func:`load_corpus`
returns its SHA-256 with it: a result quoted with the hash can be reproduced exactly.

The split is fixed and contiguous at the block level: the text is cut into blocks of about
:data:`BLOCK` characters (at the first space after each multiple of it, so words stay whole), and block ``j``
goes to *test* if ``j % 20 == 0``, to *validation* if ``j % 20 == 1``, else to *train* (90 / 5 / 5 %).
Contiguous blocks keep the test text from sharing sentences with the train text.

Reference: M. Mahoney, *text8* normalisation (2006), http://mattmahoney.net/dc/textdata.html.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import os
import re
import sysconfig
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["ALPHABET", "VOCAB", "BLOCK", "Corpus", "normalise", "load_corpus", "encode", "decode", "random_windows"]

ALPHABET = " abcdefghijklmnopqrstuvwxyz"
"""The 27 symbols; token id ``i`` is ``ALPHABET[i]`` (0 is the space)."""
VOCAB = len(ALPHABET)
BLOCK = 1000
_SKIP_DIRS = {"test", "tests", "idlelib", "site-packages", "dist-packages", "__pycache__", "lib2to3", "turtledemo"}


def normalise(text: str) -> str:
    """Lower-case ``text`` and turn every run of characters outside ``a–z`` into one space (text8 style)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return re.sub(r"[^a-z]+", " ", text.lower())


def _stdlib_docstrings() -> list[str]:
    root = sysconfig.get_paths()["stdlib"]
    docs: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            if not name.endswith(".py"):
                continue
            try:
                with open(os.path.join(dirpath, name), encoding="utf-8") as f:
                    tree = ast.parse(f.read())
            except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
                continue
            for node in ast.walk(tree):
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    doc = ast.get_docstring(node)
                    if doc:
                        docs.append(doc)
    return docs


@dataclass(frozen=True)
class Corpus:
    """The normalised corpus and its fixed split.

    Attributes:
        train, val, test: the three parts, strings over :data:`ALPHABET`.
        sha256: hex SHA-256 of the whole normalised text (UTF-8), before the split.
        source: what the text was built from (for the record).
    """

    train: str
    val: str
    test: str
    sha256: str
    source: str

    def __len__(self) -> int:
        return len(self.train) + len(self.val) + len(self.test)


def _cache_path(docstrings: bool) -> str:
    import sys

    root = os.environ.get("DIFFBOOK_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "diffbook")
    tag = "topics+docstrings" if docstrings else "topics"
    return os.path.join(root, f"text-{tag}-py{sys.version.split()[0]}-{sys.platform}.txt")


def _build_text(docstrings: bool) -> str:
    """The normalised text; parsing the standard library takes a few seconds, so the result is kept in
    ``~/.cache/diffbook`` (or ``$DIFFBOOK_CACHE``), keyed by the Python version. Delete it to rebuild."""
    path = _cache_path(docstrings)
    try:
        with open(path, encoding="ascii") as f:
            cached = f.read()
        if cached and set(cached) <= set(ALPHABET):
            return cached
    except (OSError, UnicodeDecodeError):
        pass
    from pydoc_data.topics import topics

    parts = [topics[k] for k in sorted(topics)]
    if docstrings:
        parts += _stdlib_docstrings()
    text = re.sub(r" +", " ", normalise(" ".join(parts))).strip()
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="ascii") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError:  # a read-only home: just rebuild next time
        pass
    return text


@functools.lru_cache(maxsize=2)
def load_corpus(docstrings: bool = True) -> Corpus:
    """Build the corpus (a few seconds the first time; then read from a cache file and kept for the session).

    Args:
        docstrings: add the standard library's docstrings to ``pydoc_data.topics`` (default); without
            them the corpus is the help topics alone (about a quarter of the size).
    Returns:
        A :class:`Corpus`.
    """
    if not isinstance(docstrings, bool):
        raise TypeError(f"docstrings must be a bool, got {type(docstrings).__name__}")
    import sys

    text = _build_text(docstrings)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    cuts = [0]
    while cuts[-1] + BLOCK < len(text):  # cut at the first space after every BLOCK characters: whole words
        nxt = text.find(" ", cuts[-1] + BLOCK)
        if nxt < 0:
            break
        cuts.append(nxt)
    cuts.append(len(text))
    blocks = [text[a:b].strip() for a, b in zip(cuts[:-1], cuts[1:])]
    test = " ".join(b for j, b in enumerate(blocks) if j % 20 == 0)
    val = " ".join(b for j, b in enumerate(blocks) if j % 20 == 1)
    train = " ".join(b for j, b in enumerate(blocks) if j % 20 > 1)
    source = f"pydoc_data.topics{' + stdlib docstrings' if docstrings else ''}, Python {sys.version.split()[0]}"
    return Corpus(train, val, test, digest, source)


def encode(text: str) -> Tensor:
    """Characters of :data:`ALPHABET` to token ids, shape ``(len(text),)``, int64.

    Raises:
        ValueError: if ``text`` has a character outside the alphabet (normalise it first).
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    raw = torch.frombuffer(bytearray(text.encode("ascii", errors="replace")), dtype=torch.uint8).long()
    ids = torch.where(raw == 32, torch.zeros_like(raw), raw - 96)
    bad = (ids < 0) | (ids >= VOCAB)
    if bad.any():
        i = int(bad.nonzero()[0])
        raise ValueError(f"text has the character {text[i]!r} at position {i}, outside a-z and space; "
                         "normalise it first")
    return ids


def decode(ids: Tensor) -> str | list[str]:
    """Token ids back to text: shape ``(L,)`` gives a string, ``(n, L)`` a list of strings."""
    if not isinstance(ids, Tensor) or ids.dtype.is_floating_point or ids.dtype == torch.bool:
        raise TypeError("ids must be an integer tensor of token ids")
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= VOCAB):
        raise ValueError(f"ids must lie in 0..{VOCAB - 1}, got values in {int(ids.min())}..{int(ids.max())}")
    if ids.ndim == 1:
        return "".join(ALPHABET[i] for i in ids.tolist())
    if ids.ndim == 2:
        return ["".join(ALPHABET[i] for i in row) for row in ids.tolist()]
    raise ValueError(f"ids must have shape (L,) or (n, L), got {tuple(ids.shape)}")


def random_windows(ids: Tensor, n: int, length: int, *, generator: torch.Generator | None = None) -> Tensor:
    """``n`` windows of ``length`` consecutive tokens from the id sequence ``ids``, shape ``(n, length)``."""
    if not isinstance(ids, Tensor) or ids.ndim != 1:
        raise TypeError("ids must be a 1-D integer tensor (from encode)")
    for name, v in (("n", n), ("length", length)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if length > len(ids):
        raise ValueError(f"length={length} is longer than the text ({len(ids)} tokens)")
    start = torch.randint(0, len(ids) - length + 1, (n,), generator=generator)
    return ids[start[:, None] + torch.arange(length)]
