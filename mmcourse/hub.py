"""Loading real checkpoints from the Hugging Face Hub, only when the machine is online.

Every "With real checkpoints" section starts with ``if hub.online(): ... else: hub.skip(...)`` so
that the book builds and its tests pass with no network. Built in §39.1.
"""
from __future__ import annotations

import os
import socket
from functools import lru_cache
from pathlib import Path

_OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "MMCOURSE_OFFLINE")


def _env_offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in _OFFLINE_VARS)


@lru_cache(maxsize=1)
def _reachable(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def online(timeout: float = 0.5, host: str = "huggingface.co") -> bool:
    """Whether the Hub can be reached: ``False`` at once if ``HF_HUB_OFFLINE`` (or
    ``TRANSFORMERS_OFFLINE``/``MMCOURSE_OFFLINE``) is set, otherwise one TCP connection attempt with
    ``timeout`` seconds (the answer is cached for the session). Never waits longer than that."""
    if _env_offline():
        return False
    return _reachable(host, 443, timeout)


def skip(what: str) -> None:
    """Print the one line an offline "With real checkpoints" section shows instead of running."""
    print(f"Offline: skipped — online, this cell would {what}.")


def from_pretrained(cls, repo_id: str, **kwargs):
    """``cls.from_pretrained(repo_id, **kwargs)`` if online, else a clear ``RuntimeError``.

    ``cls`` is any class with a ``from_pretrained`` method (a ``transformers`` model or processor).
    """
    if not online():
        raise RuntimeError(f"cannot load {repo_id!r}: the Hugging Face Hub is not reachable (offline)")
    return cls.from_pretrained(repo_id, **kwargs)


#: where :func:`book_file` fetches a data file when the book's repository is not checked out
#: (as on Colab, where only the package is installed); the repository of ``_config.yml``
BOOK_RAW_URL = "https://github.com/mmcourse-book/multimodal-llms/raw/main/"


def book_file(relpath: str) -> Path:
    """The path of a file the book ships (``data/...``): found in the current folder or one of its
    parents, as when a notebook runs inside the repository. Elsewhere (Colab), and only when
    online, it is fetched once from the book's repository into a temporary folder; offline a
    FileNotFoundError says how to get it. Used by §40.1–§40.3 for their shipped checkpoints."""
    for folder in (Path.cwd(), *Path.cwd().parents):
        if (folder / relpath).is_file():
            return folder / relpath
    if not online(host="github.com"):
        raise FileNotFoundError(f"{relpath} is not in this folder or its parents, and we are offline: "
                                "run the notebook inside a clone of the book's repository")
    import tempfile
    import urllib.request

    target = Path(tempfile.gettempdir()) / "mmcourse-book" / relpath
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        urllib.request.urlretrieve(BOOK_RAW_URL + relpath, target)
    return target
