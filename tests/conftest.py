"""Shared fixtures. Tests never touch the network: real data comes from ../shared, tiny models from configs."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
TEACHER = SHARED / "teachers" / "me5-small"


@pytest.fixture(scope="session")
def shared() -> Path:
    if not TEACHER.is_dir():
        pytest.fail(f"../shared not found at {SHARED}: tests need the shared teacher and data")
    return SHARED


@pytest.fixture(scope="session")
def teacher_dir(shared) -> Path:
    return TEACHER


@pytest.fixture(scope="session")
def tokenizer(teacher_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(teacher_dir)
