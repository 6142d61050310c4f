"""The simulated engine's prefix cache, as vLLM's automatic prefix caching behaves.

A prompt is cut into blocks of :data:`BLOCK_TOKENS` tokens (the sim counts a token per four
characters, so a block is 64 characters of the prompt's text; a chat prompt's text is its
messages' roles and contents, in order); each full block is named by a hash of itself and
every block before it, so that a block matches only under the same prefix. A request's cached
tokens are its leading blocks already in the cache, at most all but one of its tokens (one
token is always computed, as in vLLM); its blocks then enter the cache, the least recently used
ones leaving when it holds more than ``capacity`` blocks. The engine prefills only the tokens
not cached, and ``/metrics`` counts queried and hit tokens under vLLM's names.
"""

from __future__ import annotations

from collections import OrderedDict

from perfbench.tokens import CHARS_PER_TOKEN

BLOCK_TOKENS = 16
BLOCK_CHARS = CHARS_PER_TOKEN * BLOCK_TOKENS


class PrefixCache:
    def __init__(self, capacity_blocks: int) -> None:
        self.capacity = max(1, capacity_blocks)
        self._blocks: OrderedDict[int, None] = OrderedDict()

    def lookup(self, text: str, prompt_tokens: int) -> int:
        """The request's cached prompt tokens; its blocks are cached from now on."""
        blocks = self._blocks
        chain = 0
        hits = 0
        matching = True
        for start in range(0, len(text) - BLOCK_CHARS + 1, BLOCK_CHARS):
            chain = hash((chain, text[start : start + BLOCK_CHARS]))
            if matching and chain in blocks:
                hits += 1
                blocks.move_to_end(chain)
                continue
            matching = False
            blocks[chain] = None
            if len(blocks) > self.capacity:
                blocks.popitem(last=False)
        return max(0, min(hits * BLOCK_TOKENS, prompt_tokens - 1))
