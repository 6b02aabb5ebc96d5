"""Atomic writes: a crash or a full disk never leaves a half-written JSON file (results, bench, card data) or a
half-built folder (a pruned model, a staged Hub repository) behind."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def write_text(path: str | Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | Path, payload, indent: int = 2) -> Path:
    return write_text(path, json.dumps(payload, indent=indent, ensure_ascii=False, default=str) + "\n")


@contextmanager
def staged_folder(target: Path) -> Iterator[Path]:
    """A temp folder beside `target` that replaces it when the block succeeds and is removed when it fails, so a
    failed build never leaves a half-written repository folder."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    try:
        yield tmp
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
