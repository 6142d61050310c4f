"""sharegpt: the opening question of each recorded ShareGPT conversation, sized by its reply.

The file is a JSON array (or JSON Lines) of ``{"id": ..., "conversations": [{"from": "human",
"value": ...}, {"from": "gpt", "value": ...}, ...]}``. The first human turn becomes the prompt
(one chat user message) and the reply right after it sets ``max_tokens``, so the run's output
lengths follow real conversations. Replies are sized at 4 characters a token (at least 1);
``--tokenizer`` does not change that here.

A conversation is skipped when it has no human turn, when the turn after the first human one is
not a reply, or when either text is blank. ``from`` may also be "user", and the reply "assistant",
"chatgpt", "bard" or "bing", as in the dataset's variants.
"""

from __future__ import annotations

from typing import Any

from perfbench.config import WorkloadSpec
from perfbench.errors import DatasetError
from perfbench.tokens import estimate_tokens
from perfbench.workload.base import Prompt, register
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
        pair = _first_exchange(row)
        if pair is None:
            continue
        question, reply = pair
        conversation_id = row.fields.get("id")
        prompts.append(
            Prompt(
                id=str(conversation_id)
                if conversation_id is not None
                else f"sharegpt-{row.number}",
                messages=({"role": "user", "content": question},),
                max_tokens=max(1, estimate_tokens(len(reply))),
                metadata={"reply_chars": len(reply)},
                dataset="sharegpt",
            )
        )
    if not prompts:
        raise DatasetError(
            f"{spec.dataset_path}: no conversation has a human turn followed by a reply; "
            f"expected ShareGPT rows like {_LAYOUT}"
        )
    return prompts


def _first_exchange(row: Row) -> tuple[str, str] | None:
    """The first human turn and the reply after it, or None when the row has no such pair."""
    turns = row.fields.get("conversations")
    if not isinstance(turns, list):
        raise DatasetError(f'{row.where}: no "conversations" list; expected {_LAYOUT}')
    for i, turn in enumerate(turns):
        speaker, _ = _turn(row, i, turn)
        if speaker not in HUMAN:
            continue
        if i + 1 == len(turns):
            return None
        next_speaker, reply = _turn(row, i + 1, turns[i + 1])
        question = turn["value"]
        if next_speaker not in REPLY or not question.strip() or not reply.strip():
            return None
        return question, reply
    return None


def _turn(row: Row, i: int, turn: Any) -> tuple[str, str]:
    if (
        not isinstance(turn, dict)
        or not isinstance(turn.get("from"), str)
        or not isinstance(turn.get("value"), str)
    ):
        raise DatasetError(
            f'{row.where}: conversations[{i}] needs "from" and "value" strings; expected {_LAYOUT}'
        )
    return turn["from"].lower(), turn["value"]
