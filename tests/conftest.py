"""Shared fixtures. Tests never touch the network: real data comes from ../shared, tiny models from configs."""

import logging
import os
import sys
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


@pytest.fixture(autouse=True)
def log_handlers_outlive_capsys():
    """A CLI call in a test binds log handlers (root's, transformers') to that test's captured stderr, which pytest
    closes afterwards; a later test's log line would then print a 'Logging error' traceback into its own stderr.
    Before each test, handlers left on a closed stream are pointed back at the live one."""
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, logging.StreamHandler) and getattr(handler.stream, "closed", False):
                handler.stream = sys.stderr
                vars(handler).pop("flush", None)  # transformers pins the old stream's flush on its handler


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


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_bert_dir, shared) -> Path:
    """A real (tiny) `time-hub distill` + `select` run from the tiny teacher on Danish text, with a NER model
    fine-tuned from its best student in `tasks/ner`: the layout that `time-hub publish` reads."""
    from time_hub.cli import main

    run = tmp_path_factory.mktemp("tiny-run")
    argv = ["--teacher_name_or_path", str(tiny_bert_dir), "--output_dir", str(run)]
    argv += ["--train_files", f"[{shared / 'data' / 'text' / 'da.txt'}]", "--validation_holdout_lines", "40"]
    argv += ["--student_shape", "L2-H32-A2", "--num_relation_heads", "8", "--max_steps", "4", "--save_steps", "2"]
    argv += ["--per_device_train_batch_size", "4", "--max_seq_length", "32", "--logging_steps", "1"]
    argv += ["--use_cpu", "true", "--report_to", "none", "--disable_tqdm", "true", "--max_validation_sequences", "8"]
    assert main(["distill", *argv]) == 0
    assert main(["select", str(run), "--batch_size", "8"]) == 0
    blocks = (shared / "data" / "ner" / "da" / "dev.iob2").read_text(encoding="utf-8").split("\n\n")
    train, dev = run / "ner-train.iob2", run / "ner-dev.iob2"
    train.write_text("\n\n".join(blocks[:32]) + "\n", encoding="utf-8")
    dev.write_text("\n\n".join(blocks[32:48]) + "\n", encoding="utf-8")
    argv = ["finetune", "--config", str(ROOT / "recipes" / "finetune" / "ner-cpu.yaml"), "--model", str(run / "best")]
    argv += ["--train", str(train), "--dev", str(dev), "--output_dir", str(run / "tasks" / "ner"), "--max_steps", "4"]
    argv += ["--eval_steps", "2", "--save_steps", "2", "--max_length", "64"]
    assert main(argv) == 0
    return run
