"""How long building synthetic prompts of exact token lengths takes, before a run starts.

Builds the ``random`` dataset's pool (1,000 prompts of --input-len tokens) with the fallback
estimate tokenizer, a byte-level BPE tokenizer trained here (wrapped as a Hugging Face tokenizer)
and a small tiktoken rank file written here, so that it runs offline. Real vocabularies are
larger; their cost per token is of the same order, not the same figure.

    .venv/bin/python benchmarks/workload_build.py --input-len 2000
    .venv/bin/python benchmarks/workload_build.py --input-len 1024 --requests 100000

With ``--requests R`` it also makes R requests' bodies from the pool, as a run sends them: each
a prompt of its own (the pool body's two encoded halves joined around the request's head), and
reports the time per request and the memory the process grew by (peak RSS).
"""

from __future__ import annotations

import argparse
import base64
import resource
import tempfile
import time
from pathlib import Path

from perfbench.config import WorkloadSpec
from perfbench.workload.synthetic import WORDS, load_random


def _hf_folder(root: Path) -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    rust = Tokenizer(models.BPE())
    rust.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    rust.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=2000, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    rust.train_from_iterator([" ".join(WORDS) * 20], trainer=trainer)
    folder = root / "bpe"
    PreTrainedTokenizerFast(tokenizer_object=rust).save_pretrained(str(folder))  # type: ignore[no-untyped-call]
    return str(folder)


def _tiktoken_file(root: Path) -> str:
    ranks = {bytes([b]): None for b in range(256)}
    for word in WORDS[:300]:
        spelled = f" {word}".encode()
        ranks.update((spelled[:end], None) for end in range(2, len(spelled) + 1))
    path = root / "small.tiktoken"
    path.write_bytes(b"".join(base64.b64encode(t) + b" %d\n" % r for r, t in enumerate(ranks)))
    return f"tiktoken:{path}"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--input-len", type=int, default=2000)
    ap.add_argument("--requests", type=int, default=0, help="also build this many request bodies")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        for label, name in (
            ("estimate", None),
            ("tiktoken (small file)", _tiktoken_file(root)),
            ("Hugging Face (small BPE)", _hf_folder(root)),
        ):
            spec = WorkloadSpec(dataset="random", input_len=args.input_len, tokenizer=name)
            start = time.perf_counter()
            prompts = load_random(spec)
            took = time.perf_counter() - start
            tokens = sum(p.metadata["input_len"] for p in prompts)
            print(
                f"{label:26} {len(prompts):5} prompts, {tokens / 1e6:.2f} M tokens: "
                f"{took:.2f} s ({took / tokens * 1e6:.2f} s per million tokens)"
            )
            if args.requests:
                _requests(prompts, args.requests)


def _requests(prompts: list, n: int) -> None:
    """``n`` request bodies as the runner makes them, each with its own head; none is kept."""
    from perfbench.config import ClientSpec
    from perfbench.execute import Templates

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    templates = Templates(ClientSpec(url="http://127.0.0.1:1"), "m", prompts, salt=12345)
    start = time.perf_counter()
    size = distinct = 0
    seen: set[int] = set()
    for i in range(n):
        body = templates.request(i, 0, False).body
        size += len(body)
        key = hash(body)
        distinct += key not in seen
        seen.add(key)
    took = time.perf_counter() - start
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) / 1024
    print(
        f"{'':26} {n} request bodies ({size / n / 1024:.1f} KB each, {distinct} distinct): "
        f"{took:.2f} s ({took / n * 1e6:.1f} µs each); peak RSS grew {grown:.0f} MB"
    )


if __name__ == "__main__":
    main()
