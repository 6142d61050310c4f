"""The one character-based token estimate, for when neither the server (``usage``) nor a local
tokenizer gives a count: one token per :data:`CHARS_PER_TOKEN` characters, rounded up, so that
any non-empty text is at least one token (a 10-character text is 3 tokens everywhere: to the
client, the grader, the simulator and the ``estimate`` tokenizer). It is a usual figure for
English text in modern BPE vocabularies; other languages and code run denser, which is why a
run that leans on it says so (``token_sources`` in the report)."""

from __future__ import annotations

CHARS_PER_TOKEN = 4


def estimate_tokens(chars: int) -> int:
    """``ceil(chars / 4)``: 0 for no text, else at least 1."""
    return -(-chars // CHARS_PER_TOKEN)
