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


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Tests run tiny models and short real runs: intra-op threads gain little there, and on busy shared cores
    (measured here) waiting threads made them 5-20x slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory, tokenizer) -> Path:
    """A 2-layer BERT with the shared (real) tokenizer, as a `from_pretrained` folder: the teacher of distillation
    tests and the encoder of task tests."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=96,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    path = tmp_path_factory.mktemp("tiny-bert")
    BertModel(config, add_pooling_layer=False).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def da_lines(shared) -> list[str]:
    return (shared / "data" / "text" / "da.txt").read_text(encoding="utf-8").splitlines()
