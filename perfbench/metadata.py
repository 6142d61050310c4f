"""What a run records about its own context (pyperf-style), with no secrets in it."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

SECRET_WORDS = ("auth", "key", "token", "secret", "cookie", "password")
SECRET_FLAG_WORDS = ("key", "token", "secret", "password")


def _secret_flag(flag: str) -> bool:
    """--api-key, --judge-api-key, and any other flag whose last word names a secret (but not
    --max-tokens: "tokens" is a count)."""
    return flag.startswith("--") and flag.lower().rsplit("-", 1)[-1] in SECRET_FLAG_WORDS


def redact_argv(argv: list[str]) -> list[str]:
    """The command line with secret flags' values (--api-key, --judge-api-key, ...), secret-
    looking --header values and URL passwords replaced."""
    from perfbench.config import redact_url

    out: list[str] = []
    pending = ""  # what the next argument is the value of: "key", "header" or nothing
    for arg in argv:
        if pending:
            out.append("<redacted>" if pending == "key" else _redact_header(arg))
            pending = ""
            continue
        flag, eq, value = arg.partition("=")
        if _secret_flag(flag):
            out.append(f"{flag}=<redacted>" if eq else flag)
            pending = "" if eq else "key"
        elif flag in ("--header", "-H"):
            out.append(f"{flag}={_redact_header(value)}" if eq else flag)
            pending = "" if eq else "header"
        elif "://" in arg and "@" in arg:
            out.append(f"{flag}={redact_url(value)}" if eq and "://" in value else redact_url(arg))
        else:
            out.append(arg)
    return out


def _redact_header(value: str) -> str:
    name, sep, _ = value.partition(":")
    if any(word in name.lower() for word in SECRET_WORDS):
        return f"{name}{sep}<redacted>"
    return value


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _git_sha() -> str | None:
    root = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=2,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def collect(loop_name: str) -> dict[str, Any]:
    return {
        "perfbench": _version("perfbench"),
        "git_sha": _git_sha(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "event_loop": loop_name,
        "aiohttp": _version("aiohttp"),
        "uvloop": _version("uvloop"),
        "msgspec": _version("msgspec"),
    }
