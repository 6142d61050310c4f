"""Batch variance (``--batch-variance P``): greedy outputs that depend on who shares the batch.

A real engine's greedy output is deterministic per prompt only when its kernels are
*batch-invariant*: the same reduction order whatever the batch size. Most are not by default:
a matmul or attention kernel picks its split (and so the order of its float additions) by the
batch's shape, the logits move in their last bits, and where the top two logits are nearly tied
the argmax flips; from that token on the sequence continues differently. vLLM documents a
batch-invariant mode (``VLLM_BATCH_INVARIANT=1``), SGLang ``--enable-deterministic-inference``;
both exist because the default is not.

The simulator models that simply, for greedy (temperature 0) requests on the timed path:

* Batch size 1 is the reference numerics: a sequence decoded alone never flips.
* At each decode step ``t`` where the engine runs ``b > 1`` sequences, the token flips with
  probability ``P``, drawn by hashing (prompt, ``t``, ``b``) (:func:`mix`). The draw is a
  function of the batch history, not of chance: the same prompt under the same batch sizes
  flips at the same step, as a real engine replays its numerics.
* From the first flip on, the choice's text is another run of tokens (another stretch of the
  token pool, or, for an answered prompt, a second draw of the answer, which may be right or
  wrong), chosen so that token ``t`` differs from the one it replaces; a sequence flips once.

The step where the text first differs and the batch size then are the request's truth: its
``--timing-log`` record has them as ``diverged_at`` and ``diverged_batch``. ``--burst`` has no
batches (no engine), so nothing flips there; tool calls never flip (their arguments would stop
being JSON).
"""

from __future__ import annotations

import hashlib

MASK = (1 << 64) - 1


def prompt_digest(model: str, chat: bool, text: str) -> int:
    """A greedy request's identity: 64 non-zero bits of (model, endpoint, prompt)."""
    key = f"{model}\0{int(chat)}\0{text}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") or 1


def threshold(probability: float) -> int:
    """The 64-bit bound below which :func:`mix` flips a token, for a probability per step."""
    return min(int(probability * (1 << 64)), MASK)


def mix(digest: int, step: int, batch: int) -> int:
    """A uniform 64-bit draw from (prompt, step, batch size): splitmix64's finaliser."""
    z = (digest ^ (step * 0x9E3779B97F4A7C15) ^ (batch * 0xC2B2AE3D27D4EB4F)) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)
