"""Tokenizers that size synthetic prompts and count tokens locally, behind one small protocol.

``load_tokenizer(name)`` accepts what ``--tokenizer`` takes:

* a local folder with Hugging Face tokenizer files (``tokenizer.json``/``tokenizer_config.json``);
* a Hugging Face hub id such as ``Qwen/Qwen2.5-7B-Instruct``: read from the local hub cache
  first; with ``HF_HUB_OFFLINE=1`` nothing else is tried, otherwise it is downloaded;
* ``tiktoken:NAME`` (``tiktoken:cl100k_base``): tiktoken's own cache (``TIKTOKEN_CACHE_DIR``,
  ``DATA_GYM_CACHE_DIR`` or ``$TMPDIR/data-gym-cache``), downloaded when missing unless
  ``HF_HUB_OFFLINE=1``;
* ``tiktoken:/path/to/file.tiktoken``: a BPE rank file (``base64(token) rank`` per line), split
  with the o200k pre-tokenizer regex when the file name contains ``o200k`` and with the cl100k
  one otherwise, and with no special tokens;
* ``None``: the ``estimate`` tokenizer, 4 characters per token (see ``EstimateTokenizer``).

Every failure is one ``DatasetError`` line that names the fix. transformers is imported only
when a Hugging Face tokenizer is asked for, so that ``perfbench --help`` stays fast.

>>> tok = load_tokenizer(None)
>>> tok.count("twelve chars"), tok.source
(3, 'estimate')
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import os
import tempfile
import zlib
from pathlib import Path
from typing import Any, Literal, Protocol

from perfbench.errors import DatasetError
from perfbench.tokens import CHARS_PER_TOKEN, estimate_tokens

Source = Literal["hf", "tiktoken", "estimate"]


class Tokenizer(Protocol):
    """What perfbench needs of a tokenizer. ``count`` and ``encode`` add no special tokens."""

    name: str
    source: Source
    vocab_size: int

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str:
        """Text of ``ids``; may raise (KeyError, ...) for an id that is not in the vocabulary."""
        ...

    def count(self, text: str) -> int: ...

    def __hash__(self) -> int: ...  # by identity: loaded tokenizers key caches (lru_cache)


@functools.lru_cache(maxsize=16)
def load_tokenizer(name: str | None) -> Tokenizer:
    """The tokenizer ``--tokenizer NAME`` names (loaded once per name), or the estimate.

    >>> load_tokenizer("tiktoken:/models/cl100k_base.tiktoken").count("Hello world")  # doctest: +SKIP
    2
    """
    if name is None:
        return EstimateTokenizer()
    if name.startswith("tiktoken:"):
        return _load_tiktoken(name)
    return _load_hf(name)


class EstimateTokenizer:
    """The fallback when no tokenizer is given: one token per 4 characters, rounded up.

    ``count(text)`` is ``ceil(len(text) / 4)``, a usual estimate for English text in modern
    BPE vocabularies. ``encode`` cuts the text into 4-character chunks; the vocabulary is the
    1,620 printable chunks " bak", " tum", ... (space, consonant, vowel, consonant), so that
    text built from decoded ids round-trips and has an exact length in this tokenizer's own
    terms. Other chunks map to a stable hash of themselves (``decode(encode(t))`` then differs
    from ``t``, while the count stays right).
    """

    name = "estimate"
    source: Source = "estimate"
    CHARS_PER_TOKEN = CHARS_PER_TOKEN

    def __init__(self) -> None:
        consonants, vowels = "bcdfghjklmnprstvwz", "aeiou"
        self._vocab = [f" {a}{v}{b}" for a in consonants for v in vowels for b in consonants]
        self._ids = {piece: i for i, piece in enumerate(self._vocab)}
        self.vocab_size = len(self._vocab)

    def encode(self, text: str) -> list[int]:
        step = self.CHARS_PER_TOKEN
        chunks = (text[i : i + step] for i in range(0, len(text), step))
        return [self._ids.get(c, zlib.crc32(c.encode()) % self.vocab_size) for c in chunks]

    def decode(self, ids: list[int]) -> str:
        return "".join(self._vocab[i] for i in ids)

    def count(self, text: str) -> int:
        return estimate_tokens(len(text))


class _HFTokenizer:
    source: Source = "hf"

    def __init__(self, name: str, hf: Any) -> None:
        self.name = name
        self._hf = hf
        self.vocab_size: int = len(hf)

    def encode(self, text: str) -> list[int]:
        # verbose=False: no "longer than the model's maximum length" log line for a long prompt
        return list(self._hf.encode(text, add_special_tokens=False, verbose=False))

    def decode(self, ids: list[int]) -> str:
        text: str = self._hf.decode(
            ids, skip_special_tokens=True, clean_up_tokenization_spaces=False
        )
        return text

    def count(self, text: str) -> int:
        return len(self.encode(text))


class _TiktokenTokenizer:
    source: Source = "tiktoken"

    def __init__(self, name: str, encoding: Any) -> None:
        self.name = name
        self._enc = encoding
        self.vocab_size: int = encoding.n_vocab

    def encode(self, text: str) -> list[int]:
        # encode_ordinary: "<|endoftext|>" in a prompt is text, not a special token.
        return list(self._enc.encode_ordinary(text))

    def decode(self, ids: list[int]) -> str:
        text: str = self._enc.decode(ids)
        return text

    def count(self, text: str) -> int:
        return len(self._enc.encode_ordinary(text))


def _offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) as it is now, not as it was at import."""
    flags = (os.environ.get(v, "") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return any(f.strip().lower() in ("1", "true", "yes", "on") for f in flags)


def _one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- Hugging Face -------------------------------------------------------------------------


def _looks_like_path(name: str) -> bool:
    """A hub id is ``org/name``; anything shaped like a file path is taken for a missing folder."""
    return name.startswith(("/", ".", "~")) or name.endswith("/") or "\\" in name


def _load_hf(name: str) -> Tokenizer:
    path = Path(name).expanduser()
    if path.is_file():
        raise DatasetError(
            f"--tokenizer {name} is a file; give the folder that holds it and tokenizer_config.json"
        )
    if not path.is_dir() and _looks_like_path(name):
        raise DatasetError(
            f"--tokenizer {name}: no such folder; give a folder with tokenizer.json"
            " (or a hub id, or tiktoken:NAME)"
        )
    # The PyTorch-not-found notice is an advisory log line printed at import: not ours to show.
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    from huggingface_hub import constants
    from transformers import AutoTokenizer

    if _offline():
        # huggingface_hub reads HF_HUB_OFFLINE once, at import; set later (by a caller or a
        # test), it would still fetch its agent registry even with local_files_only=True.
        constants.HF_HUB_OFFLINE = True

    if path.is_dir():
        try:
            return _HFTokenizer(name, AutoTokenizer.from_pretrained(str(path)))
        except Exception as exc:  # transformers raises OSError, ValueError, KeyError, ...
            raise DatasetError(
                f"--tokenizer {name}: cannot load the tokenizer in this folder"
                f" ({_one_line(exc)}); it needs tokenizer.json or the files of a slow tokenizer"
            ) from exc
    try:  # the hub cache first: no network when the files are already here
        return _HFTokenizer(name, AutoTokenizer.from_pretrained(name, local_files_only=True))
    except Exception as exc:
        if _offline():
            raise DatasetError(
                f"--tokenizer {name} is not in the local Hugging Face cache and HF_HUB_OFFLINE=1"
                f" ({_one_line(exc, 160)}); give a local folder with tokenizer.json"
            ) from exc
    # Fetch only the tokenizer's files, through the hub client: it fails in under a second when
    # the hub cannot be reached, where transformers retries for most of a minute, logging.
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(name, allow_patterns=list(TOKENIZER_FILES))
        return _HFTokenizer(name, AutoTokenizer.from_pretrained(folder))
    except Exception as exc:
        raise DatasetError(
            f"--tokenizer {name}: cannot load it from the Hugging Face hub ({_one_line(exc)});"
            " give a local folder with tokenizer.json"
        ) from exc


TOKENIZER_FILES = ("*.json", "*.model", "*.tiktoken", "*.txt", "*.vocab")
"""What a tokenizer is made of on the hub (tokenizer.json, tokenizer_config.json, config.json,
sentencepiece models, merges and vocab files); never weights, never code."""


# --- tiktoken -----------------------------------------------------------------------------

# The pre-tokenizer regexes of the cl100k_base and o200k_base encodings, as published by
# tiktoken: counts match the OpenAI models' only with the exact pattern of the rank file.
CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)

# Where tiktoken downloads each built-in encoding's files from; its cache names a file by the
# SHA-1 of this URL, which is how a missing file is found without touching the network.
_BLOB = "https://openaipublic.blob.core.windows.net"
_TIKTOKEN_FILES = {
    "gpt2": (
        f"{_BLOB}/gpt-2/encodings/main/vocab.bpe",
        f"{_BLOB}/gpt-2/encodings/main/encoder.json",
    ),
    "r50k_base": (f"{_BLOB}/encodings/r50k_base.tiktoken",),
    "p50k_base": (f"{_BLOB}/encodings/p50k_base.tiktoken",),
    "p50k_edit": (f"{_BLOB}/encodings/p50k_base.tiktoken",),
    "cl100k_base": (f"{_BLOB}/encodings/cl100k_base.tiktoken",),
    "o200k_base": (f"{_BLOB}/encodings/o200k_base.tiktoken",),
    "o200k_harmony": (f"{_BLOB}/encodings/o200k_base.tiktoken",),
}


def tiktoken_cache_dir() -> Path | None:
    """Where tiktoken keeps downloaded rank files (None when its cache is turned off)."""
    for var in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if var in os.environ:
            return Path(os.environ[var]) if os.environ[var] else None
    return Path(tempfile.gettempdir()) / "data-gym-cache"


def tiktoken_cache_path(url: str) -> Path | None:
    cache = tiktoken_cache_dir()
    return cache / hashlib.sha1(url.encode()).hexdigest() if cache else None


def _load_tiktoken(name: str) -> Tokenizer:
    spec = name.removeprefix("tiktoken:")
    if "/" in spec or os.sep in spec or spec.endswith(".tiktoken") or Path(spec).is_file():
        return _load_tiktoken_file(name, Path(spec).expanduser())
    import tiktoken

    known = tiktoken.list_encoding_names()
    if spec not in known:
        raise DatasetError(
            f"--tokenizer tiktoken:{spec}: unknown encoding; known: {', '.join(known)}"
            " (or give tiktoken:/path/to/file.tiktoken)"
        )
    paths = [tiktoken_cache_path(url) for url in _TIKTOKEN_FILES.get(spec, ())]
    cached = all(p is not None and p.is_file() for p in paths)
    hint = f"give tiktoken:/path/to/{spec}.tiktoken, or put it in tiktoken's cache"
    if not cached and _offline():
        raise DatasetError(
            f"--tokenizer tiktoken:{spec} is not in tiktoken's cache ({tiktoken_cache_dir()})"
            f" and HF_HUB_OFFLINE=1; {hint}"
        )
    try:
        return _TiktokenTokenizer(name, tiktoken.get_encoding(spec))
    except Exception as exc:  # requests' ConnectionError when offline, ValueError on a bad hash
        raise DatasetError(
            f"--tokenizer tiktoken:{spec}: cannot load it ({_one_line(exc, 160)}); {hint}"
        ) from exc


def _load_tiktoken_file(name: str, path: Path) -> Tokenizer:
    """Read a rank file ourselves: tiktoken's loader would copy it into its cache by path."""
    import tiktoken

    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise DatasetError(
            f"--tokenizer tiktoken:{path}: cannot read the BPE file ({exc.strerror});"
            " give an existing .tiktoken file, or tiktoken:cl100k_base from tiktoken's cache"
        ) from exc
    ranks: dict[bytes, int] = {}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            text, rank = line.split()
            token = base64.b64decode(text, validate=True)
            rank_value = int(rank)
        except (ValueError, binascii.Error) as exc:
            raise DatasetError(
                f"{path}:{n}: not a tiktoken BPE line (expected 'base64 rank'): {line[:60]!r}"
            ) from exc
        if token in ranks:
            raise DatasetError(f"{path}:{n}: token {token!r} is listed twice")
        ranks[token] = rank_value
    missing = sum(bytes([b]) not in ranks for b in range(256))
    if missing:
        raise DatasetError(
            f"{path}: {missing} of the 256 single-byte tokens are missing;"
            " a byte-level BPE file needs them all to encode any text"
        )
    if len(set(ranks.values())) != len(ranks):
        raise DatasetError(f"{path}: two tokens share a rank; is this a tiktoken BPE file?")
    pattern = O200K_PATTERN if "o200k" in path.name else CL100K_PATTERN
    try:
        encoding = tiktoken.Encoding(
            name=path.stem, pat_str=pattern, mergeable_ranks=ranks, special_tokens={}
        )
    except Exception as exc:
        raise DatasetError(f"{path}: tiktoken cannot use it ({_one_line(exc)})") from exc
    return _TiktokenTokenizer(name, encoding)
