"""sharegpt: the opening question of each recorded ShareGPT conversation, sized by its reply;
with ``--multi-turn`` (or ``--turns N``), the whole conversation, each human turn sent after the
model's answer to the one before and sized by the reply recorded after it.

The file is a JSON array (or JSON Lines) of ``{"id": ..., "conversations": [{"from": "human",
"value": ...}, {"from": "gpt", "value": ...}, ...]}``. The first human turn becomes the prompt
(one chat user message) and the reply right after it sets ``max_tokens``, so the run's output
lengths follow real conversations. Replies are sized at 4 characters a token (at least 1);
``--tokenizer`` does not change that here.

A conversation is skipped when it has no human turn, when the turn after the first human one is
not a reply, or when either text is blank; as a session, it ends before the first turn that
breaks the human/reply alternation or is blank. ``from`` may also be "user", and the reply "assistant",
"chatgpt", "bard" or "bing", as in the dataset's variants.
"""

from __future__ import annotations

from typing import Any

from perfbench.config import WorkloadSpec
from perfbench.errors import DatasetError
from perfbench.tokens import estimate_tokens
from perfbench.workload.base import Prompt, Turn, register
from perfbench.workload.jsonl import Row, read_rows

HUMAN = frozenset({"human", "user"})
REPLY = frozenset({"gpt", "assistant", "chatgpt", "bard", "bing"})

_LAYOUT = '{"conversations": [{"from": "human", "value": ...}, {"from": "gpt", "value": ...}]}'


@register(
    "sharegpt",
    "first human turn of each ShareGPT conversation; the reply's length sets max_tokens",
    needs_path=True,
)
def load(spec: WorkloadSpec) -> list[Prompt]:
    assert spec.dataset_path is not None
    prompts = []
    for row in read_rows(spec.dataset_path):
        pairs = _exchanges(row, spec.turns if spec.sessions else 1)
        if not pairs:
            continue
        (question, reply), later = pairs[0], pairs[1:]
        conversation_id = row.fields.get("id")
        prompts.append(
            Prompt(
                id=str(conversation_id)
                if conversation_id is not None
                else f"sharegpt-{row.number}",
                messages=({"role": "user", "content": question},),
                max_tokens=_reply_tokens(reply),
                metadata={"reply_chars": len(reply)},
                dataset="sharegpt",
                followups=tuple(Turn(q, _reply_tokens(r)) for q, r in later),
            )
        )
    if not prompts:
        raise DatasetError(
            f"{spec.dataset_path}: no conversation has a human turn followed by a reply; "
            f"expected ShareGPT rows like {_LAYOUT}"
        )
    return prompts


def _reply_tokens(reply: str) -> int:
    return max(1, estimate_tokens(len(reply)))


def _exchanges(row: Row, most: int | None) -> list[tuple[str, str]]:
    """The (human turn, reply) pairs from the first human turn on, as long as they alternate
    and neither text is blank, at most ``most`` (None: all); [] when the row has none. Turns
    up to the first reply must be well formed; a later malformed turn ends the conversation."""
    turns = row.fields.get("conversations")
    if not isinstance(turns, list):
        raise DatasetError(f'{row.where}: no "conversations" list; expected {_LAYOUT}')
    start = 0
    while start < len(turns) and _turn(row, start, turns[start])[0] not in HUMAN:
        start += 1
    pairs: list[tuple[str, str]] = []
    for i in range(start, len(turns) - 1, 2):
        if pairs and not all(_well_formed(t) for t in turns[i : i + 2]):
            break
        (who, question), (replier, reply) = _turn(row, i, turns[i]), _turn(row, i + 1, turns[i + 1])
        if who not in HUMAN or replier not in REPLY or not question.strip() or not reply.strip():
            break
        pairs.append((question, reply))
        if most is not None and len(pairs) == most:
            break
    return pairs


def _well_formed(turn: Any) -> bool:
    return (
        isinstance(turn, dict)
        and isinstance(turn.get("from"), str)
        and isinstance(turn.get("value"), str)
    )


def _turn(row: Row, i: int, turn: Any) -> tuple[str, str]:
    if not _well_formed(turn):
        raise DatasetError(
            f'{row.where}: conversations[{i}] needs "from" and "value" strings; expected {_LAYOUT}'
        )
    return turn["from"].lower(), turn["value"]
