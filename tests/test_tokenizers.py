"""Tokenizers and the synthetic datasets: exact lengths with a real (tiny, locally trained) BPE
tokenizer, a tiktoken rank file written here, and the 4-characters-per-token estimate.

Nothing here reaches the network: ``no_network`` records any attempt to resolve or connect.
"""

from __future__ import annotations

import base64
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from perfbench.config import WorkloadSpec
from perfbench.errors import DatasetError
from perfbench.workload.synthetic import (
    INSTRUCTION,
    SPEED_INPUT_LENS,
    WORDS,
    load_longalpaca,
    load_random,
    load_speed,
)
from perfbench.workload.tokenizers import EstimateTokenizer, Tokenizer, load_tokenizer

TRAINING_TEXT = (
    " ".join(WORDS) + " The quick brown fox jumps over the lazy dog. "
    "Pack my box with five dozen liquor jugs. How vexingly quick daft zebras jump! "
) * 12


@pytest.fixture(scope="session")
def hf_folder(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A byte-level BPE tokenizer trained here in milliseconds, saved as transformers saves one."""
    from tokenizers import Tokenizer as RustTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    rust = RustTokenizer(models.BPE())
    rust.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    rust.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=700,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=["<|endoftext|>"],
        show_progress=False,
    )
    rust.train_from_iterator([TRAINING_TEXT], trainer=trainer)
    folder = tmp_path_factory.mktemp("tok") / "tiny-bpe"
    wrapped = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=rust, eos_token="<|endoftext|>"
    )
    wrapped.save_pretrained(str(folder))
    return str(folder)


@pytest.fixture(scope="session")
def tiktoken_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A rank file: the 256 single bytes, then merges that spell a few words with their space."""
    ranks = {bytes([b]): None for b in range(256)}  # ordered: the rank is the position
    for word in ("the", "river", "stone", "light", "water", "garden", "story", "music"):
        spelled = f" {word}".encode()
        ranks.update((spelled[:end], None) for end in range(2, len(spelled) + 1))
    path = tmp_path_factory.mktemp("tiktoken") / "tiny.tiktoken"
    path.write_bytes(b"".join(base64.b64encode(t) + b" %d\n" % r for r, t in enumerate(ranks)))
    return path


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every attempt to resolve a name or open a connection, refused and recorded."""
    attempts: list[object] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args)
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


def exact(tok: Tokenizer, text: str | None) -> int:
    assert text is not None
    return tok.count(text)


# --- load_tokenizer ---------------------------------------------------------------------


def test_hf_folder_loads_and_counts(hf_folder: str, no_network: list[object]) -> None:
    tok = load_tokenizer.__wrapped__(hf_folder)  # load it here, not from the cache
    assert (tok.source, tok.name) == ("hf", hf_folder)
    assert 300 < tok.vocab_size <= 700
    ids = tok.encode("the river and the stone")
    assert tok.decode(ids) == "the river and the stone"
    assert tok.count("the river and the stone") == len(ids)
    assert tok.count("<|endoftext|>") == 1, "special-token text is parsed as a server would"
    assert load_tokenizer(hf_folder) is load_tokenizer(hf_folder), "loaded once per name"
    assert not no_network


def test_estimate_tokenizer_is_four_characters_per_token() -> None:
    tok = load_tokenizer(None)
    assert isinstance(tok, EstimateTokenizer) and tok.source == "estimate"
    assert [tok.count(t) for t in ("", "a", "abcd", "abcde", "x" * 4000)] == [0, 1, 1, 2, 1000]
    ids = [5, 17, 1600, 0]
    assert tok.decode(tok.encode(tok.decode(ids))) == tok.decode(ids)
    assert len(tok.encode("any text at all, even ünïcode")) == tok.count(
        "any text at all, even ünïcode"
    )
    assert load_tokenizer(None) is tok


def test_tiktoken_rank_file(tiktoken_file: Path) -> None:
    tok = load_tokenizer(f"tiktoken:{tiktoken_file}")
    assert tok.source == "tiktoken"
    assert tok.vocab_size == len(tiktoken_file.read_bytes().splitlines())
    assert tok.encode(" the river") == tok.encode(" the") + tok.encode(" river")
    assert tok.count(" the river") == 2
    # No merge applies: one token per byte, and special-token text is plain text.
    assert tok.count("héllo <|endoftext|>") == len("héllo <|endoftext|>".encode())
    assert tok.decode(tok.encode(" stone music")) == " stone music"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read the BPE file"),
        (b"dGhl 0\nnot-a-line\n", "not a tiktoken BPE line"),
        (b"dGhl 0\n", "256 single-byte tokens are missing"),
        (b"dGhl 0\ndGhl 1\n", "listed twice"),
    ],
)
def test_tiktoken_file_errors_are_one_line(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "bad.tiktoken"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DatasetError, match=message) as info:
        load_tokenizer(f"tiktoken:{path}")
    assert "\n" not in str(info.value)


def test_tiktoken_named_encoding_offline_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: list[object]
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    with pytest.raises(DatasetError, match=r"not in tiktoken's cache .* tiktoken:/path/to") as info:
        load_tokenizer("tiktoken:cl100k_base")
    assert "\n" not in str(info.value) and not no_network
    with pytest.raises(DatasetError, match="unknown encoding; known: .*cl100k_base"):
        load_tokenizer("tiktoken:cl99k")


def test_hub_id_offline_fails_fast_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: list[object]
) -> None:
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # after huggingface_hub read it, at import
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", constants.HF_HUB_OFFLINE)  # restored after
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    start = time.monotonic()
    with pytest.raises(DatasetError, match="give a local folder") as info:
        load_tokenizer("perfbench-tests/no-such-model")
    assert time.monotonic() - start < 5
    assert "\n" not in str(info.value) and "HF_HUB_OFFLINE=1" in str(info.value)
    assert not no_network


def test_bad_folders_are_one_line(tmp_path: Path, hf_folder: str) -> None:
    with pytest.raises(DatasetError, match="no such folder"):
        load_tokenizer(str(tmp_path / "missing"))
    with pytest.raises(DatasetError, match="is a file; give the folder"):
        load_tokenizer(str(Path(hf_folder) / "tokenizer.json"))
    with pytest.raises(DatasetError, match="cannot load the tokenizer in this folder") as info:
        load_tokenizer(str(tmp_path))
    assert "\n" not in str(info.value)


def test_importing_the_datasets_does_not_import_transformers() -> None:
    code = "import sys, perfbench.workload.synthetic; print('transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- the random dataset -------------------------------------------------------------------


@pytest.mark.parametrize("tokenizer", ["hf", "tiktoken", None])
def test_random_prompts_have_the_exact_length(
    tokenizer: str | None, hf_folder: str, tiktoken_file: Path
) -> None:
    name = {"hf": hf_folder, "tiktoken": f"tiktoken:{tiktoken_file}", None: None}[tokenizer]
    tok = load_tokenizer(name)
    n = 256 if tokenizer == "hf" else None  # the default, 1,024, takes 5 s with this one
    prompts = load_random(
        WorkloadSpec(dataset="random", tokenizer=name, input_len=n, output_len=32)
    )
    want = n or 1024
    assert len(prompts) == 1000 and len({p.text for p in prompts}) == 1000
    assert all(exact(tok, p.text) == want for p in prompts)
    # each request's own prompt (its head in place) keeps the length, 1,000 requests later too
    sent = [*_sent(prompts), *_sent(prompts, start=10**9)]
    assert len(set(sent)) == 2000 and all(exact(tok, t) == want for t in sent)
    first = prompts[0]
    assert first.dataset == "random" and first.max_tokens == 32 and first.id == "random-0"
    assert first.metadata == {"input_len": want, "output_len": 32, "prefix_len": 0}
    assert first.text is not None and first.text == first.text.strip()


@pytest.mark.parametrize("tokenizer", ["hf", None])
def test_random_range_ratio_and_shared_prefix(tokenizer: str | None, hf_folder: str) -> None:
    name = hf_folder if tokenizer else None
    tok = load_tokenizer(name)
    spec = WorkloadSpec(
        dataset="random", tokenizer=name, input_len=200, output_len=100, range_ratio=0.5,
        prefix_len=37,
    )  # fmt: skip
    prompts = load_random(spec)
    inputs = [p.metadata["input_len"] for p in prompts]
    outputs = [p.metadata["output_len"] for p in prompts]
    assert all(exact(tok, p.text) == p.metadata["input_len"] for p in prompts)
    assert min(inputs) >= 37 + 100 and max(inputs) <= 37 + 300 and len(set(inputs)) > 100
    assert min(outputs) >= 50 and max(outputs) <= 150 and len(set(outputs)) > 50
    assert all(p.max_tokens == p.metadata["output_len"] for p in prompts)
    assert {p.metadata["prefix_len"] for p in prompts} == {37}


def _sent(prompts: list, start: int = 0) -> list[str]:
    """The text each request sends: its pool prompt with the request's own head in place."""
    out = []
    for i, p in enumerate(prompts):
        a, b = p.unique_span
        out.append(p.text[:a] + p.heads.head(start + i) + p.text[b:])
    return out


@pytest.mark.parametrize("tokenizer", ["hf", None])
def test_random_prefix_is_the_same_p_tokens(tokenizer: str | None, hf_folder: str) -> None:
    name = hf_folder if tokenizer else None
    tok = load_tokenizer(name)
    spec = WorkloadSpec(dataset="random", tokenizer=name, input_len=8, prefix_len=64)
    texts = _sent(load_random(spec))
    # Every prompt is one 64-token text, then " " and 8 tokens of words of its own.
    first, last = min(texts), max(texts)
    shared = first[: next(i for i, (a, b) in enumerate(zip(first, last)) if a != b)]
    assert shared.endswith(" ") and tok.count(shared.rstrip()) == 64
    assert all(tok.count(t) == 72 for t in texts)
    if tok.source == "hf":  # the server's prefix cache sees the same 64 token ids
        assert len({tuple(tok.encode(t)[:64]) for t in texts}) == 1
        assert tok.encode(texts[0])[:64] == tok.encode(shared.rstrip())


def test_random_is_deterministic_by_seed(hf_folder: str) -> None:
    def texts(seed: int) -> list[str | None]:
        spec = WorkloadSpec(dataset="random", tokenizer=hf_folder, input_len=16, seed=seed)
        return [p.text for p in load_random(spec)]

    assert texts(1) == texts(1)
    assert texts(1) != texts(2)


# --- speed and longalpaca -----------------------------------------------------------------


@pytest.mark.parametrize("tokenizer", ["hf", None])
def test_speed_lengths_are_exact(tokenizer: str | None, hf_folder: str) -> None:
    name = hf_folder if tokenizer else None
    tok = load_tokenizer(name)
    prompts = load_speed(WorkloadSpec(dataset="speed", tokenizer=name))
    assert (
        [exact(tok, p.text) for p in prompts] == list(SPEED_INPUT_LENS) == [1, 6144, 14336, 30720]
    )
    assert {p.max_tokens for p in prompts} == {2048}
    assert load_speed(WorkloadSpec(dataset="speed", output_len=7))[0].max_tokens == 7
    with pytest.raises(DatasetError, match="fixed input lengths"):
        load_speed(WorkloadSpec(dataset="speed", input_len=100))


@pytest.mark.parametrize("tokenizer", ["hf", "tiktoken", None])
def test_longalpaca_is_exact_with_the_instruction_inside(
    tokenizer: str | None, hf_folder: str, tiktoken_file: Path
) -> None:
    name = {"hf": hf_folder, "tiktoken": f"tiktoken:{tiktoken_file}", None: None}[tokenizer]
    tok = load_tokenizer(name)
    spec = WorkloadSpec(dataset="longalpaca", tokenizer=name, input_len=3000)
    prompts = load_longalpaca(spec)
    assert len(prompts) == 32 and len({p.text for p in prompts}) == 32
    assert all(exact(tok, p.text) == 3000 for p in prompts)
    assert all((p.text or "").endswith(INSTRUCTION) for p in prompts)
    assert prompts[0].max_tokens == 256 and prompts[0].dataset == "longalpaca"
    assert [p.text for p in load_longalpaca(spec)] == [p.text for p in prompts]


def test_longalpaca_shortest_length() -> None:
    with pytest.raises(DatasetError, match="leaves no room for a passage"):
        load_longalpaca(WorkloadSpec(dataset="longalpaca", input_len=5))
    tok = load_tokenizer(None)
    shortest = tok.count("Word" + INSTRUCTION)
    assert exact(tok, load_longalpaca(WorkloadSpec(input_len=shortest))[0].text) == shortest
