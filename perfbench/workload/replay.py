"""Prompts for trace replay: each trace row becomes a prompt of its recorded input length.

A row that carries its own prompt text is sent as is. Otherwise the text is random words fitted
to exactly ``input_length`` tokens of the workload's tokenizer (``--tokenizer``; the fallback
counts about 4 characters per token), and the request asks for exactly ``output_length`` tokens.
Building costs about 1 s per million prompt tokens with tiktoken, 4 s with a Hugging Face
tokenizer; rows of equal input length share one text.
"""

from __future__ import annotations

import random

from perfbench.config import WorkloadSpec
from perfbench.load.trace import Trace
from perfbench.workload.base import Prompt
from perfbench.workload.synthetic import fit, word_pieces
from perfbench.workload.tokenizers import load_tokenizer


def trace_prompts(trace: Trace, spec: WorkloadSpec) -> list[Prompt]:
    tok = load_tokenizer(spec.tokenizer)
    pool = word_pieces(tok)
    rng = random.Random(spec.seed)
    texts: dict[int, str] = {}
    prompts = []
    for k, (n, m, given) in enumerate(zip(trace.input_lens, trace.output_lens, trace.prompts)):
        if given is None and n not in texts:
            texts[n] = fit(tok, n, lambda count: rng.choices(pool, k=count))
        prompts.append(
            Prompt(
                id=f"trace-{k}",
                text=given if given is not None else texts[n],
                max_tokens=m,
                metadata={"input_len": n, "output_len": m},
                dataset="trace",
                exact_output=True,
            )
        )
    return prompts
