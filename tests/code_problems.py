"""LiveCodeBench-format problems written for the tests, each with a known-correct solution and
known-wrong ones (a wrong value, an off-by-one, a wrong output format), in the layout
LiveCodeBench's ``code_generation_lite`` files have: test cases as JSON strings, and private
tests as base64(zlib(pickle(JSON string))), as the real files pack them."""

from __future__ import annotations

import base64
import json
import pickle
import zlib
from pathlib import Path
from typing import Any


def pack(tests: list[dict[str, str]]) -> str:
    """Private tests the way LiveCodeBench's lite files store them."""
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(tests)))).decode()


def _stdin(i: str, o: str) -> dict[str, str]:
    return {"input": i, "output": o, "testtype": "stdin"}


def _fn(i: str, o: str) -> dict[str, str]:
    return {"input": i, "output": o, "testtype": "functional"}


PROBLEMS: list[dict[str, Any]] = [
    {
        "id": "sum-n",
        "date": "2024-08-03",
        "difficulty": "easy",
        "content": "Read N, then N integers. Print their sum.",
        "starter": "",
        "public": [_stdin("3\n1 2 3\n", "6\n")],
        "private": [_stdin("1\n-5\n", "-5\n"), _stdin("4\n10 20 30 40\n", "100\n")],
        "correct": "n = int(input())\nprint(sum(map(int, input().split())))\n",
        "wrong": {
            "wrong value": "n = int(input())\nprint(sum(map(int, input().split())) + 1)\n",
            "off by one": "n = int(input())\nxs = list(map(int, input().split()))\n"
            "print(sum(xs[: n - 1]))\n",
            "output format": "n = int(input())\nprint('sum =', sum(map(int, input().split())))\n",
        },
    },
    {
        "id": "mean",
        "date": "2024-09-15",
        "difficulty": "medium",
        "content": "Read N and N numbers; print their mean with 3 decimals, then the maximum.",
        "starter": "",
        "public": [_stdin("2\n1 2\n", "1.500\n2\n")],
        "private": [_stdin("3\n1 1 2\n", "1.333\n2\n")],
        "correct": "import sys\n\ndef main():\n    data = sys.stdin.read().split()\n"
        "    n = int(data[0])\n    xs = list(map(int, data[1:1 + n]))\n"
        "    print(f'{sum(xs) / n:.3f}')\n    print(max(xs))\n\n"
        "if __name__ == '__main__':\n    main()\n",
        "wrong": {
            "wrong value": "import sys\ndata = sys.stdin.read().split()\nn = int(data[0])\n"
            "xs = list(map(int, data[1:1 + n]))\nprint(f'{sum(xs) / n:.3f}')\nprint(min(xs))\n",
            "output format": "import sys\ndata = sys.stdin.read().split()\nn = int(data[0])\n"
            "xs = list(map(int, data[1:1 + n]))\nprint(f'{sum(xs) / n:.3f}', max(xs))\n",
        },
    },
    {
        "id": "two-sum",
        "date": "2024-11-20",
        "difficulty": "easy",
        "content": "Return the indices of the two numbers that add up to target.",
        "starter": "class Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n",
        "func": "twoSum",
        "public": [_fn("[2,7,11,15]\n9", "[0, 1]")],
        "private": [_fn("[3,2,4]\n6", "[1, 2]"), _fn("[3,3]\n6", "[0, 1]")],
        "correct": "class Solution:\n    def twoSum(self, nums, target):\n        seen = {}\n"
        "        for i, x in enumerate(nums):\n            if target - x in seen:\n"
        "                return (seen[target - x], i)\n            seen[x] = i\n",
        "wrong": {
            "wrong value": "class Solution:\n    def twoSum(self, nums, target):\n"
            "        return [0, 1]\n",
            "off by one": "class Solution:\n    def twoSum(self, nums, target):\n"
            "        for i in range(len(nums)):\n            for j in range(i + 1, len(nums)):\n"
            "                if nums[i] + nums[j] == target:\n"
            "                    return [i + 1, j + 1]\n",
        },
    },
    {
        "id": "count-vowels",
        "date": "2025-01-10",
        "difficulty": "hard",
        "content": "Return how many vowels the string has.",
        "starter": "class Solution:\n    def countVowels(self, s: str) -> int:\n",
        "func": "countVowels",
        "public": [_fn('"hello"', "2")],
        "private": [_fn('"AEIOUxyz"', "5"), _fn('""', "0")],
        "correct": "class Solution:\n    def countVowels(self, s):\n"
        "        return sum(c in 'aeiouAEIOU' for c in s)\n",
        "wrong": {
            "wrong value": "class Solution:\n    def countVowels(self, s):\n"
            "        return sum(c in 'aeiou' for c in s)\n",
            "output format": "class Solution:\n    def countVowels(self, s):\n"
            "        return str(sum(c in 'aeiouAEIOU' for c in s))\n",
        },
    },
]


def row(p: dict[str, Any]) -> dict[str, Any]:
    return {
        "question_title": p["id"].replace("-", " ").title(),
        "question_content": p["content"],
        "platform": "leetcode" if p.get("func") else "atcoder",
        "question_id": p["id"],
        "contest_id": "c-" + p["id"],
        "contest_date": p["date"] + "T00:00:00",
        "starter_code": p["starter"],
        "difficulty": p["difficulty"],
        "public_test_cases": json.dumps(p["public"]),
        "private_test_cases": pack(p["private"]),
        "metadata": json.dumps({"func_name": p["func"]} if p.get("func") else {}),
        "solution": p["correct"],
    }


def write(path: Path) -> Path:
    path.write_text("".join(json.dumps(row(p)) + "\n" for p in PROBLEMS))
    return path
