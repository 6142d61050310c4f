"""Prompts for trace replay: each trace row becomes a prompt of its recorded input length.

A row that carries its own prompt text is sent as is. Any other row is made of blocks of
``block_size`` tokens (the trace's, 512 for Mooncake's), one block per hash id: a row with
``hash_ids`` [0, 1, 7] is block 0, block 1 and the first ``input_length − 2 × 512`` tokens of
block 7, so two rows share exactly the leading blocks the trace says they share. A row without
``hash_ids`` (an Azure trace's, or a Mooncake row without them) gets fresh ids no other row has,
so it shares nothing. Every request asks for exactly ``output_length`` tokens.

A block is one-token words (:func:`~perfbench.workload.synthetic.unique_heads`' words: one token
alone and after a space, two when doubled), so a row of n words is exactly n tokens of the
workload's tokenizer. Its first words spell its id in base len(words), so two different blocks
differ within those first few tokens: beyond the blocks the trace shares, two prompts have at
most that many tokens in common (2 for 256 words and 65,536 ids), never a whole cache block.
The rest of a block is cut from one random text at an offset picked by the id and the run's
salt, so that a second replay against the same server finds nothing of the first in its cache.

Texts are built when a request is made (:class:`BlockRow`): holding every row's text of a
12,000-row trace of 12,000-token prompts would take about 580 MB of bodies
(``benchmarks/trace_replay.py``).
"""

from __future__ import annotations

import array
import itertools
import math
import random
from dataclasses import dataclass

from perfbench.config import WorkloadSpec
from perfbench.errors import DatasetError
from perfbench.load.trace import Trace
from perfbench.workload.base import Prompt, UniqueHeads
from perfbench.workload.synthetic import one_token_words
from perfbench.workload.tokenizers import load_tokenizer

#: words of the text that blocks are cut from (about 1.5 MB of text and 2 MB of offsets)
CORPUS_WORDS = 1 << 18


class TraceBlocks:
    """The blocks of one trace: block ``h`` under salt ``s`` is always the same words.

    A block is its head (its id spelled in words) and then ``size`` − head words of one random
    text made once, from an offset picked by (salt, id): cutting a slice is a copy, where
    drawing 512 words per block cost about 50 µs, most of a 12,000-token request's build.
    """

    def __init__(self, words: tuple[str, ...], size: int, largest_id: int) -> None:
        self.size = size
        # enough words to spell every id of the trace, fewer only when a block is shorter
        digits = 1
        while len(words) ** digits <= largest_id:
            digits += 1
        self.heads = UniqueHeads(words, min(size, digits))
        seq = random.Random(0).choices(words, k=CORPUS_WORDS + size)
        self._text = " ".join(seq)
        self._starts = array.array("q", itertools.accumulate((len(w) + 1 for w in seq), initial=0))

    def _words(self, salt: int, h: int, count: int) -> str:
        """The first ``count`` words of block ``h``."""
        head = self.heads.head(h)
        rest = count - self.heads.length
        if rest <= 0:
            return " ".join(head.split(" ")[:count])
        at = hash((salt, h)) % CORPUS_WORDS  # ints hash alike in every process
        starts = self._starts
        return head + " " + self._text[starts[at] : starts[at + rest] - 1]

    def text(self, ids: tuple[int, ...], tokens: int, salt: int) -> str:
        """The text of ``ids``' blocks, the last one cut to make ``tokens`` words in all."""
        size = self.size
        parts = [self._words(salt, h, size) for h in ids[:-1]]
        parts.append(self._words(salt, ids[-1], tokens - (len(ids) - 1) * size))
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class BlockRow:
    """A trace row's prompt, built when its request is made (``Prompt.composed``)."""

    ids: tuple[int, ...]
    tokens: int
    blocks: TraceBlocks

    def text(self, salt: int) -> str:
        return self.blocks.text(self.ids, self.tokens, salt)


def trace_prompts(trace: Trace, spec: WorkloadSpec) -> list[Prompt]:
    tok = load_tokenizer(spec.tokenizer)
    words = one_token_words(tok)
    if len(words) < 2:
        raise DatasetError(
            f"tokenizer {tok.name} has too few one-token words to build trace prompts from;"
            " try another --tokenizer"
        )
    size = trace.block_size
    fresh = 1 + max((max(ids) for ids in trace.hash_ids if ids), default=-1)
    rows: list[tuple[int, ...] | None] = []
    for n, given, ids in zip(trace.input_lens, trace.prompts, trace.hash_ids):
        if given is not None:
            rows.append(None)
        elif ids is not None:
            rows.append(ids)
        else:  # ids of its own: it shares nothing
            count = math.ceil(n / size)
            rows.append(tuple(range(fresh, fresh + count)))
            fresh += count
    blocks = TraceBlocks(words, size, max(fresh - 1, 0))
    prompts = []
    for k, (n, m, given, ids) in enumerate(
        zip(trace.input_lens, trace.output_lens, trace.prompts, rows)
    ):
        meta: dict[str, object] = {"input_len": n, "output_len": m}
        if trace.hash_ids[k] is not None:
            meta["hash_ids"] = list(trace.hash_ids[k] or ())
        prompts.append(
            Prompt(
                id=f"trace-{k}",
                text=given,
                max_tokens=m,
                metadata=meta,
                dataset="trace",
                exact_output=True,
                composed=None if ids is None else BlockRow(ids, n, blocks),
            )
        )
    return prompts
