"""What the simulated model "says": prompt token counts, output lengths and token texts.

There is no tokenizer here, on purpose: the sim must cost nothing per request. The rules are
cheap and documented so that a client can predict them:

* **prompt tokens** = ceil(characters / 4), at least 1, where the characters are those of every
  text the model would read: each message's ``content`` (a string, or the ``text`` of its content
  parts) for chat, the ``prompt`` string for completions. A completions prompt given as a list of
  token ids counts exactly one token per id.
* **token texts** are words (and some punctuation) from the small vocabulary below, each word
  with its leading space, so that one streamed chunk is one token and the text reads like
  (meaningless) prose. An output is a run of a long seeded token sequence (:class:`TokenPool`).
* **output lengths** come from the configured distribution, drawn from the request's own seeded
  random generator (see :func:`output_length`).
"""

from __future__ import annotations

import math
import random

import msgspec

from perfbench.tokens import estimate_tokens

_WORD_TEXT = """
the of and to in is that it for was on are as with be at by this have from or had not but
what all were when we there can an your which their said if do will each about how up out them
then she many some so these would other into has more her two like him see time could no make
than first been its who now people my made over did down only way find use may water long little
very after words called just where most know get through back much go good new write our me man
too any day same right look think also around another came come work three word must because
does part even place well such here take why things help put years different away again off went
old number great tell men say small every found still between name should home big give air line
set own under read last never us left end along while might next sound below saw something
thought both few those always looked show large often together asked house world going want
school important until form food keep children feet land side without boy once animals life
enough took sometimes four head above kind began almost live page got earth need far hand high
year mother light parts country father let night following picture being study second eyes soon
times story boys since white days ever paper hard near sentence better best across during today
others however sure means knew try told young miles sun ways thing whole hear example heard
several change answer room sea against top turned learn point city play toward five using himself
usually model token engine batch cache request stream latency memory queue server
"""
WORDS = _WORD_TEXT.split()

# Punctuation tokens keep the prose from being one endless run of words.
_PUNCTUATION = [",", ".", ",", ".", "?", ";"]

#: The vocabulary: (text, JSON-encoded text) pairs. The JSON form is what goes on the wire, so it
#: is encoded once here and never again.
VOCAB: list[tuple[str, bytes]] = [
    (text, msgspec.json.encode(text)) for text in [" " + w for w in WORDS] + _PUNCTUATION
]


def count_text_tokens(chars: int) -> int:
    """The prompt-token rule: about four characters per token, at least one."""
    return max(1, estimate_tokens(chars))


class TokenPool:
    """A long seeded run of vocabulary tokens; an output is the run starting at a random offset.

    Outputs are read from this one shared tuple by index, so a request holds two integers rather
    than a list of hundreds of tokens: drawing 256 tokens one by one would cost ~30 us a request,
    and long-lived per-request lists make the garbage collector's pauses longer.
    """

    SIZE = 1 << 16

    def __init__(self, seed: int, longest: int) -> None:
        base = random.Random(seed).choices(VOCAB, k=self.SIZE)
        while len(base) < self.SIZE + longest:  # so that start + length never wraps
            base += base[: self.SIZE + longest - len(base)]
        self.tokens: tuple[tuple[str, bytes], ...] = tuple(base)

    def start(self, rng: random.Random) -> int:
        return rng.randrange(self.SIZE)

    def text(self, start: int, length: int) -> list[str]:
        return [t[0] for t in self.tokens[start : start + length]]


def output_length(rng: random.Random, dist: str, mean: float, sigma: float) -> int:
    """One natural output length (where the model would stop on its own), at least 1.

    ``fixed`` is always round(mean); ``uniform`` spans 1..2*mean-1; ``exponential`` has the given
    mean; ``lognormal`` has the given mean and ``sigma`` as the standard deviation of its log
    (so the median is mean * exp(-sigma**2 / 2)).
    """
    if dist == "fixed":
        value = mean
    elif dist == "uniform":
        value = rng.uniform(1.0, 2.0 * mean - 1.0) if mean > 1 else 1.0
    elif dist == "exponential":
        value = rng.expovariate(1.0 / mean)
    else:
        value = rng.lognormvariate(math.log(mean) - sigma * sigma / 2.0, sigma)
    return max(1, round(value))
