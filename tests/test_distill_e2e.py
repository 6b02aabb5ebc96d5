"""End to end on the real teacher: `time-hub distill` + `time-hub select` on Danish text from ../shared."""

import hashlib
import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from time_hub.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_distilling_the_real_teacher_beats_random_init(tmp_path, teacher_dir, capsys):
    teacher_hash = _sha256(teacher_dir / "model.safetensors")
    run = tmp_path / "run"
    # The random-init L4-H256 recipe (the demo until the CPU operating points), fewer steps and smaller
    # batches/sequences so the test takes about a minute on 2 cores.
    argv = ["--config", str(ROOT / "recipes/compress/distill-da-random-L4.yaml"), "--output_dir", str(run)]
    argv += [
        "--teacher_name_or_path",
        str(teacher_dir),
        "--train_files",
        f"[{teacher_dir.parents[1] / 'data/text/da.txt'}]",
    ]
    argv += ["--max_steps", "120", "--per_device_train_batch_size", "8", "--max_seq_length", "64"]
    argv += [
        "--save_steps",
        "60",
        "--eval_strategy",
        "no",
        "--max_validation_sequences",
        "64",
        "--disable_tqdm",
        "true",
    ]
    assert main(["distill", *argv]) == 0
    assert main(["select", str(run), "--batch_size", "32"]) == 0
    printed = capsys.readouterr().out
    assert "best checkpoint:" in printed and "(random init)" in printed

    report = json.loads((run / "selection.json").read_text())
    assert [c["step"] for c in report["checkpoints"]] == [60, 120]
    best, random_init = report["best"]["loss"], report["random_init"]["loss"]
    assert best < 0.75 * random_init, report  # clearly below, not noise
    assert all(report["best"][r] < report["random_init"][r] for r in ("qq", "kk", "vv"))
    assert report["settings"]["teacher_layer"] == 12 and report["settings"]["num_relation_heads"] == 32

    best_dir = run / "best"
    assert not (best_dir / "optimizer.pt").exists() and (best_dir / "distillation.json").exists()
    student = AutoModel.from_pretrained(best_dir)
    tokenizer = AutoTokenizer.from_pretrained(best_dir)
    assert student.config.num_hidden_layers == 4 and student.config.hidden_size == 256
    with torch.no_grad():
        hidden = student(**tokenizer(["Hvor ligger Odense?"], return_tensors="pt")).last_hidden_state
    assert hidden.shape[-1] == 256 and torch.isfinite(hidden).all()
    assert _sha256(teacher_dir / "model.safetensors") == teacher_hash
