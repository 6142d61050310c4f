"""Download an eval dataset's data files from the Hugging Face Hub, or from ModelScope.

Used only when no --dataset-path is given. ``PERFBENCH_HUB=modelscope`` switches to ModelScope
(the ``modelscope`` package must be installed); the default is the Hugging Face Hub through
``huggingface_hub``, which honours ``HF_ENDPOINT``, ``HF_TOKEN``, ``HF_HOME`` and
``HF_HUB_OFFLINE`` and caches what it downloads, so a second run needs no network.

    >>> files = fetch(HubFiles("HuggingFaceH4/MATH-500", ("test.jsonl",)))
    >>> [f.name for f in files]
    ['test.jsonl']

Every failure is one DatasetError line that says how to go on without the hub:
"cannot download X from the Hugging Face Hub (offline?): give --dataset-path FILE".
"""

from __future__ import annotations

import fnmatch
import importlib
import os
from dataclasses import dataclass
from pathlib import Path

from perfbench.errors import DatasetError

HUB_ENV = "PERFBENCH_HUB"


@dataclass(frozen=True, slots=True)
class HubFiles:
    """Where a dataset lives: a dataset repo and glob patterns for its data files.

    ``patterns`` are alternatives in order of preference: every file matching any of them is
    downloaded, and the files of the first pattern that matched are read (sorted by path).
    ``modelscope_id``/``modelscope_patterns`` name the ModelScope copy when it differs.
    """

    repo_id: str
    patterns: tuple[str, ...]
    modelscope_id: str | None = None
    modelscope_patterns: tuple[str, ...] | None = None


def fetch(source: HubFiles) -> list[Path]:
    """Local paths of the source's data files, downloading them (or reusing the cache)."""
    hub = os.environ.get(HUB_ENV, "").strip().lower() or "huggingface"
    if hub in ("huggingface", "hf"):
        repo_id, patterns = source.repo_id, source.patterns
        folder, hub_name = _from_huggingface(repo_id, patterns), "the Hugging Face Hub"
    elif hub == "modelscope":
        repo_id = source.modelscope_id or source.repo_id
        patterns = source.modelscope_patterns or source.patterns
        folder, hub_name = _from_modelscope(repo_id, patterns), "ModelScope"
    else:
        raise DatasetError(
            f"{HUB_ENV}={hub!r} is not a hub perfbench knows: use huggingface or modelscope"
        )
    files = _matching(folder, patterns)
    if not files:
        raise DatasetError(
            f"{repo_id} on {hub_name} has no file matching {' or '.join(patterns)}; "
            "give --dataset-path FILE"
        )
    return files


def _matching(folder: Path, patterns: tuple[str, ...]) -> list[Path]:
    names = sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and ".cache" not in p.relative_to(folder).parts
    )
    for pattern in patterns:
        hits = [name for name in names if fnmatch.fnmatch(name, pattern)]
        if hits:
            return [folder / name for name in hits]
    return []


def _from_huggingface(repo_id: str, patterns: tuple[str, ...]) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{repo_id} from the Hugging Face Hub"
    try:
        # HF_ENDPOINT is read here rather than at import, so a mirror set later still counts.
        folder = snapshot_download(
            repo_id,
            repo_type="dataset",
            allow_patterns=list(patterns),
            endpoint=os.environ.get("HF_ENDPOINT") or None,
        )
    except GatedRepoError as exc:
        raise DatasetError(
            f"cannot download {where}: the dataset is gated; accept its terms at "
            f"https://huggingface.co/datasets/{repo_id} and log in (hf auth login, or set "
            "HF_TOKEN), or give --dataset-path FILE"
        ) from exc
    except RepositoryNotFoundError as exc:
        raise DatasetError(
            f"cannot download {where}: no such dataset (or it is private: log in); "
            "give --dataset-path FILE"
        ) from exc
    except RevisionNotFoundError as exc:
        raise DatasetError(
            f"cannot download {where}: its main revision is missing; give --dataset-path FILE"
        ) from exc
    except LocalEntryNotFoundError as exc:
        # huggingface_hub's answer to "no connection and nothing cached" (or HF_HUB_OFFLINE=1)
        raise DatasetError(f"cannot download {where} (offline?): give --dataset-path FILE") from exc
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "error"
        raise DatasetError(
            f"cannot download {where} (HTTP {status}): give --dataset-path FILE"
        ) from exc
    except Exception as exc:  # the HTTP library's transport errors (proxy, TLS) vary by version
        raise DatasetError(
            f"cannot download {where} ({type(exc).__name__}: {_first_line(exc)}): "
            "give --dataset-path FILE"
        ) from exc
    return Path(folder)


def _from_modelscope(repo_id: str, patterns: tuple[str, ...]) -> Path:
    try:
        module = importlib.import_module("modelscope.hub.snapshot_download")
    except ImportError as exc:
        raise DatasetError(
            f"{HUB_ENV}=modelscope needs the modelscope package: pip install 'perfbench[modelscope]' "
            "(or unset it to use the Hugging Face Hub, or give --dataset-path FILE)"
        ) from exc
    try:
        folder = module.snapshot_download(
            repo_id=repo_id, repo_type="dataset", allow_patterns=list(patterns)
        )
    except Exception as exc:  # modelscope raises requests' and its own errors, with no common root
        raise DatasetError(
            f"cannot download {repo_id} from ModelScope (offline? {type(exc).__name__}: "
            f"{_first_line(exc)}): give --dataset-path FILE"
        ) from exc
    return Path(folder)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or ["no message"])[0][:200]
