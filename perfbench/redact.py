"""Secrets out of everything perfbench records or prints: the one list of secret-looking words,
and the redaction of URLs, headers and command lines built on it."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

SECRET_WORDS = ("auth", "key", "token", "secret", "cookie", "password")
SECRET_FLAG_WORDS = ("key", "token", "secret", "password")  # a flag's last word; not "auth"


def _secret_flag(flag: str) -> bool:
    """--api-key, --judge-api-key, and any other flag whose last word names a secret (but not
    --max-tokens: "tokens" is a count)."""
    return flag.startswith("--") and flag.lower().rsplit("-", 1)[-1] in SECRET_FLAG_WORDS


def redact_argv(argv: list[str]) -> list[str]:
    """The command line with secret flags' values (--api-key, --judge-api-key, ...), secret-
    looking --header values and URL passwords replaced."""
    out: list[str] = []
    pending = ""  # what the next argument is the value of: "key", "header" or nothing
    for arg in argv:
        if pending == "header" and not arg.startswith("-"):
            out.append(_redact_header(arg))  # headers take several values (K:V or K=V each)
            continue
        if pending == "key":
            out.append("<redacted>")
            pending = ""
            continue
        pending = ""
        flag, eq, value = arg.partition("=")
        if _secret_flag(flag):
            out.append(f"{flag}=<redacted>" if eq else flag)
            pending = "" if eq else "key"
        elif flag in HEADER_FLAGS:
            out.append(f"{flag}={_redact_header(value)}" if eq else flag)
            pending = "" if eq else "header"
        elif "://" in arg and "@" in arg:
            out.append(f"{flag}={redact_url(value)}" if eq and "://" in value else redact_url(arg))
        else:
            out.append(arg)
    return out


def secret_name(name: str) -> bool:
    """Whether a header (or any other) name looks like it carries a secret."""
    lowered = name.lower()
    return any(word in lowered for word in SECRET_WORDS)


HEADER_FLAGS = ("--header", "-H", "--headers")  # --headers: evalscope's K=V form


def split_header(value: str) -> tuple[str, str, str]:
    """``K:V`` or ``K=V`` (evalscope, vLLM): split at whichever comes first."""
    colon, equals = value.find(":"), value.find("=")
    at = min(i for i in (colon, equals, len(value)) if i >= 0)
    return value[:at], value[at : at + 1], value[at + 1 :]


def _redact_header(value: str) -> str:
    name, sep, _ = split_header(value)
    if secret_name(name):
        return f"{name}{sep}<redacted>"
    return value


def redact_url(url: str) -> str:
    """The URL without a password in it (``http://user:pw@h`` → ``http://user:<redacted>@h``)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(
        (
            parts.scheme,
            f"{parts.username}:<redacted>@{host}",
            parts.path,
            parts.query,
            parts.fragment,
        )
    )
