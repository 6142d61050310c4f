"""Synthetic prompts of an exact token length: the ``random``, ``speed`` and ``longalpaca`` datasets.

Lengths are counted by the tokenizer of ``--tokenizer`` (``load_tokenizer``; without one, the
4-characters-per-token estimate) over the prompt text alone: the chat template the server
wraps around it adds its own tokens, which are not counted here.

How a length is made exact. Decoding random token ids and re-encoding the text is not a
round trip for BPE: ids that split a character or a word re-encode into other tokens, and
neighbours merge. So the text is built from *word pieces* instead (``word_pieces``): the
vocabulary's tokens that decode to a plain ASCII word and cost exactly one more token each time
" word" is repeated. They join at spaces, where BPE pre-tokenizers split, so a text of n pieces
nearly always counts n. ``fit`` still counts the whole text (head + pieces + tail) and corrects
it, adding pieces when short and dropping them from the end when long, until the count is
exactly the target: about one encode per random prompt and three per prose passage. A fixed
head (the shared prefix) must also keep its own token ids at the start of every prompt, so that
a server's prefix cache sees the same tokens.

>>> from perfbench.config import WorkloadSpec
>>> prompts = load_random(WorkloadSpec(dataset="random", input_len=64, prefix_len=16))
>>> prompts[0].metadata
{'input_len': 80, 'output_len': 128, 'prefix_len': 16}
"""

from __future__ import annotations

import dataclasses
import functools
import math
import random
from collections.abc import Callable

from perfbench.config import WorkloadSpec
from perfbench.errors import DatasetError
from perfbench.workload.base import Prompt, Turn, UniqueHeads, register
from perfbench.workload.tokenizers import Tokenizer, load_tokenizer

DEFAULT_INPUT_LEN = 1024
DEFAULT_OUTPUT_LEN = 128
RANDOM_PROMPTS = 1000  # distinct prompts in the pool; the runner cycles through them
RANDOM_TOKEN_BUDGET = 1 << 21  # ...but fewer (at least 32) when they would hold more tokens
SPEED_INPUT_LENS = (1, 6144, 14336, 30720)
SPEED_OUTPUT_LEN = 2048
LONG_INPUT_LEN = 8192
LONG_OUTPUT_LEN = 256
LONG_PROMPTS = 32
INSTRUCTION = "\n\nSummarise the passage above in five sentences."

Draw = Callable[[int], list[str]]

# Common English words for the longalpaca passages, and word pieces of last resort.
_WORD_LIST = """
    the of and to in is was for that with as on by at from his her their this which an be
    had not are but have were all one they there been has when who will more no if out so
    said what up its about into than them can only other new some could time these two may
    then do first any my now such like our over man me even most made after also did many
    before must through back years where much your way well down should because each just
    those people how too little state good very make world still own see men work long get
    here between both life being under never day same another know while last might us great
    old year off come since against go came right used take three small large next early
    river mountain city village garden forest window letter story music market harbour winter
    summer morning evening light water stone bridge road field house school family friend
    country history question answer reason number power voice hand head heart mind paper
    table book river valley island ocean cloud storm wind rain snow fire earth sky sun moon
    star tree flower bird horse boat train station street corner door wall floor kitchen
    teacher student doctor farmer writer painter soldier sailor merchant traveller
    quiet bright dark warm cold gentle sudden ancient modern simple careful strange
    open close carry follow remember forget listen speak write read build travel
    begin finish change grow learn return arrive leave wait watch turn bring hold
"""
WORDS = tuple(dict.fromkeys(_WORD_LIST.split()))


@functools.lru_cache(maxsize=8)
def word_pieces(tok: Tokenizer, scan: int = 20000, want: int = 2048) -> tuple[str, ...]:
    """Pieces " word" that cost one token each in ``tok``, drawn from its vocabulary.

    Scans up to ``scan`` ids in a fixed pseudo-random order (so the pool does not depend on
    ``--seed``) and keeps the decoded ASCII words whose repetition grows by one token per copy;
    the built-in English words pass the same test when the vocabulary has fewer than 64.
    """
    found: dict[str, None] = {}  # ordered, deduplicated

    def consider(word: str) -> None:
        piece = f" {word}"
        if piece not in found and tok.count(piece * 4) - tok.count(piece) == 3:
            found[piece] = None

    for i in random.Random(0).sample(range(tok.vocab_size), min(tok.vocab_size, scan)):
        try:
            word = tok.decode([i]).strip()
        except (KeyError, ValueError, IndexError):  # a gap in a rank file's ranks
            continue
        if word.isascii() and word.isalpha():
            consider(word)
            if len(found) >= want:
                break
    if len(found) < 64:
        for word in WORDS:
            consider(word)
    if not found:
        raise DatasetError(
            f"tokenizer {tok.name} has no one-token words to build prompts from;"
            " try another --tokenizer"
        )
    return tuple(found)


def fit(
    tok: Tokenizer,
    target: int,
    draw: Draw,
    *,
    head: str = "",
    tail: str = "",
    per_piece: float = 1.0,
) -> str:
    """``head + pieces + tail`` whose count in ``tok`` is exactly ``target`` tokens.

    ``draw(k)`` gives k more pieces, each starting with its separator and costing about
    ``per_piece`` tokens. Each round counts the whole text, so effects at the seams (a word
    merging with its neighbour) are measured rather than predicted, then corrects it:

    * far off (over 64 tokens): drop or add pieces in bulk, scaled by the tokens per piece
      seen so far;
    * close: drop pieces from the end, then add pieces one at a time, by each piece's own
      count, so that the corrections add up to the error exactly (a word may cost 2 tokens);
    * a round that gets no closer re-draws one more of the last pieces: in cl100k, "end.\\n\\n"
      is 2 tokens but "end. word\\n\\n" is 4, so "one word more" can flip between one under
      and one over for ever.

    It usually takes 1 count of the whole text (random pieces) to 3 (prose); it gives up
    with a DatasetError after 64.
    """
    base = tok.count(head + tail)
    if target < 1 or base > target:
        raise DatasetError(
            f"a prompt of {target} tokens cannot hold its fixed text of {base} tokens;"
            " raise --input-len"
        )
    head_ids = tok.encode(head) if head and tok.source != "estimate" else []
    costs: dict[str, int] = {}

    def cost(piece: str) -> int:
        if piece not in costs:
            costs[piece] = tok.count(piece)
        return costs[piece]

    pieces = draw(round((target - base) / per_piece))
    for _ in range(8):  # the first word loses its space: prefer one that is still one token
        if head or not pieces or cost(pieces[0].lstrip()) <= 1:
            break
        pieces[0:1] = draw(1)
    best, stall = math.inf, 0
    for _ in range(64):
        text = _assemble(head, pieces, tail)
        if head_ids:
            ids = tok.encode(text)
            got, head_kept = len(ids), ids[: len(head_ids)] == head_ids
        else:
            got, head_kept = tok.count(text), True
        error = got - target
        if error == 0 and head_kept:
            return text
        if error == 0 and pieces:  # the right count, but the head merged into the body
            pieces[0:1] = draw(1)
            continue
        stall = stall + 1 if abs(error) >= best else 0
        best = min(best, abs(error))
        if stall:  # re-draw the end: drop `stall` more pieces than the error asks for
            for _ in range(min(stall, len(pieces))):
                error -= cost(pieces.pop())
        if abs(error) > 64:
            per_piece = max(0.25, (got - base) / len(pieces)) if pieces else 1.0
            if error > 0:
                del pieces[-max(1, min(len(pieces), int(error / per_piece))) :]
            else:
                pieces += draw(max(1, int(-error / per_piece)))
            continue
        while error > 0 and pieces:
            error -= cost(pieces.pop())
        for _ in range(8 * -error):
            if error == 0:
                break
            piece = draw(1)[0]
            if cost(piece) <= -error:
                pieces.append(piece)
                error += cost(piece)
        if error > 0 and not pieces:
            break  # the fixed text alone is over the target
    raise DatasetError(
        f"could not make a prompt of exactly {target} tokens with tokenizer {tok.name};"
        " try another --seed or --tokenizer"
    )


def _assemble(head: str, pieces: list[str], tail: str) -> str:
    body = "".join(pieces)
    return head + (body if head else body.lstrip()) + tail


def _around(rng: random.Random, n: int, ratio: float) -> int:
    """A length uniform in [n(1 - ratio), n(1 + ratio)], at least 1."""
    low = max(1, math.floor(n * (1 - ratio)))
    return rng.randint(low, max(low, math.floor(n * (1 + ratio))))


@register("random", "prompts of an exact input length in the model's tokenizer, unique per request")
def load_random(spec: WorkloadSpec) -> list[Prompt]:
    """1,000 prompt bodies of random one-token words, seeded by ``spec.seed``; every request
    sends its own prompt.

    Fewer bodies, down to 32, when 1,000 would hold more than 2M tokens (over 2,097 tokens
    each): building them costs about 1 s per million tokens with tiktoken and 4 s with a Hugging
    Face tokenizer. Requests take the bodies in turn, and each gets a head of its own right
    after the shared prefix (:class:`UniqueHeads`, a few one-token words chosen by the request's
    number): so no two requests share more than the prefix asked for, however many there are,
    and a server's prefix cache finds nothing else to reuse. ``reuse_prompts`` sends the bodies
    as they are instead, again and again (what this dataset did before, and the report then
    says how many requests re-sent a prompt).

    Each has ``prefix_len`` + n tokens (n uniform in ``input_len`` ± ``range_ratio``, as in
    vLLM's random dataset) and asks for m tokens (``output_len`` ± ``range_ratio``). The first
    ``prefix_len`` tokens are shared: by every prompt, or with ``prefix_groups`` G by the
    prompts of one of G groups (body k in group k mod G). Metadata ``input_len`` is the whole
    prompt's count.
    """
    tok = load_tokenizer(spec.tokenizer)
    pool = word_pieces(tok)
    rng = random.Random(spec.seed)

    def draw(k: int) -> list[str]:
        return rng.choices(pool, k=k)

    input_len = spec.input_len or DEFAULT_INPUT_LEN
    output_len = spec.output_len or DEFAULT_OUTPUT_LEN
    prefix_len = spec.prefix_len
    groups = spec.prefix_groups
    prefixes = [fit(tok, prefix_len, draw) if prefix_len else "" for _ in range(groups)]
    count = max(32, min(RANDOM_PROMPTS, RANDOM_TOKEN_BUDGET // (prefix_len + input_len)))
    count = max(count, groups)
    lengths = [(_around(rng, input_len, spec.range_ratio), _around(rng, output_len,
                spec.range_ratio)) for _ in range(count)]  # fmt: skip
    heads = None if spec.reuse_prompts else unique_heads(tok, min(n for n, _ in lengths))
    prompts = []
    for i, (own, m) in enumerate(lengths):
        prefix = prefixes[i % groups]
        n = prefix_len + own
        span = None
        head = prefix
        if heads is not None:  # a placeholder the size of a head, replaced per request
            sep = " " if prefix else ""
            placeholder = heads.head(0)
            span = (len(prefix) + len(sep), len(prefix) + len(sep) + len(placeholder))
            head = prefix + sep + placeholder
        prompts.append(
            Prompt(
                id=f"random-{i}",
                text=fit(tok, n, draw, head=head),
                max_tokens=m,
                metadata={
                    "input_len": n,
                    "output_len": m,
                    "prefix_len": prefix_len,
                    **({"prefix_group": i % groups} if groups > 1 else {}),
                },
                dataset="random",
                exact_output=True,
                unique_span=span,
                heads=heads,
            )
        )
    if spec.turns is not None and spec.turns > 1:
        return _conversations(spec, prompts, draw, tok)
    return prompts


FOLLOWUPS = 256  # distinct later turns: a conversation's history already makes it its own


def _conversations(
    spec: WorkloadSpec, prompts: list[Prompt], draw: Draw, tok: Tokenizer
) -> list[Prompt]:
    """The prompts as first turns of ``turns``-turn conversations: each later turn is
    ``input_len`` new tokens (± ``range_ratio``) and asks for exactly ``output_len`` (±).
    Later turns come from a pool of ``FOLLOWUPS``, taken in rotation: what makes each request
    its own is the first turn's head, which every later turn carries in its history."""
    assert spec.turns is not None
    rng = random.Random(spec.seed + 1)
    input_len = spec.input_len or DEFAULT_INPUT_LEN
    output_len = spec.output_len or DEFAULT_OUTPUT_LEN
    later = spec.turns - 1
    pool = []
    for _ in range(min(FOLLOWUPS, len(prompts) * later)):
        n = _around(rng, input_len, spec.range_ratio)
        m = _around(rng, output_len, spec.range_ratio)
        pool.append(Turn(fit(tok, n, draw), m, exact_output=True))
    return [
        dataclasses.replace(
            p,
            followups=tuple(pool[(i * later + j) % len(pool)] for j in range(later)),
        )
        for i, p in enumerate(prompts)
    ]


@functools.lru_cache(maxsize=8)
def one_token_words(tok: Tokenizer) -> tuple[str, ...]:
    """Up to 256 words that count one token alone and after a space, and two when doubled:
    joined by spaces, n of them are exactly n tokens."""
    return tuple(
        w for w in (p.strip() for p in word_pieces(tok)[:256])
        if tok.count(w) == 1 and tok.count(" " + w) == 1 and tok.count(f"{w} {w}") == 2
    )  # fmt: skip


def unique_heads(tok: Tokenizer, room: int) -> UniqueHeads | None:
    """Words for per-request heads (:func:`one_token_words`), as many as make 2^32 heads
    (fewer when the prompts leave less room); None with no room."""
    words = one_token_words(tok)
    if len(words) < 2 or room < 2:
        return None
    length = min(room - 1, math.ceil(32 / math.log2(len(words))))
    return UniqueHeads(words, length)


@register("speed", "fixed input lengths 1, 6k, 14k, 30k tokens for speed tables")
def load_speed(spec: WorkloadSpec) -> list[Prompt]:
    """One prompt per length in ``SPEED_INPUT_LENS``, each asking for ``output_len`` or 2,048."""
    if spec.input_len is not None or spec.range_ratio or spec.prefix_len:
        lengths = ", ".join(map(str, SPEED_INPUT_LENS))
        raise DatasetError(
            f"--dataset speed has fixed input lengths ({lengths}); drop --input-len,"
            " --range-ratio and --prefix-len, or use --dataset random"
        )
    tok = load_tokenizer(spec.tokenizer)
    pool = word_pieces(tok)
    rng = random.Random(spec.seed)
    output_len = spec.output_len or SPEED_OUTPUT_LEN
    return [
        Prompt(
            id=f"speed-{n}",
            text=fit(tok, n, lambda k: rng.choices(pool, k=k)),
            max_tokens=output_len,
            metadata={"input_len": n, "output_len": output_len, "prefix_len": 0},
            dataset="speed",
            exact_output=True,
        )
        for n in SPEED_INPUT_LENS
    ]


class _Prose:
    """Seeded pseudo-English: sentences of 8-20 of ``WORDS``, paragraphs of 3-7 sentences."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._left_in_sentence = 0
        self._left_in_paragraph = 0

    def take(self, k: int) -> list[str]:
        pieces = []
        rng = self._rng
        for _ in range(k):
            word = rng.choice(WORDS)
            sep = " "
            if self._left_in_sentence == 0:
                word = word.capitalize()
                self._left_in_sentence = rng.randint(8, 20)
                if self._left_in_paragraph == 0:
                    self._left_in_paragraph = rng.randint(3, 7)
                    sep = "\n\n"
                self._left_in_paragraph -= 1
            self._left_in_sentence -= 1
            pieces.append(f"{sep}{word}." if self._left_in_sentence == 0 else f"{sep}{word}")
        return pieces


@register("longalpaca", "long-context prompts synthesised to --input-len")
def load_longalpaca(spec: WorkloadSpec) -> list[Prompt]:
    """32 passages of seeded pseudo-English, each followed by a summarising instruction.

    Each prompt, instruction included, has ``input_len`` (default 8,192) ± ``range_ratio``
    tokens and asks for ``output_len`` (default 256) ± ``range_ratio``.
    """
    if spec.prefix_len:
        raise DatasetError("--prefix-len applies to --dataset random only")
    tok = load_tokenizer(spec.tokenizer)
    rng = random.Random(spec.seed)
    input_len = spec.input_len or LONG_INPUT_LEN
    output_len = spec.output_len or LONG_OUTPUT_LEN
    shortest = math.floor(input_len * (1 - spec.range_ratio))
    needed = tok.count(f"Word{INSTRUCTION}")
    if shortest < needed:
        raise DatasetError(
            f"--input-len {input_len} leaves no room for a passage (the instruction takes"
            f" {needed - 1} tokens); give --input-len {needed} or more"
        )
    sample = _Prose(random.Random(0)).take(2000)
    per_word = tok.count("".join(sample).lstrip()) / len(sample)
    prompts = []
    for i in range(LONG_PROMPTS):
        n = _around(rng, input_len, spec.range_ratio)
        m = _around(rng, output_len, spec.range_ratio)
        prompts.append(
            Prompt(
                id=f"longalpaca-{i}",
                text=fit(tok, n, _Prose(rng).take, tail=INSTRUCTION, per_piece=per_word),
                max_tokens=m,
                metadata={"input_len": n, "output_len": m, "prefix_len": 0},
                dataset="longalpaca",
            )
        )
    return prompts
