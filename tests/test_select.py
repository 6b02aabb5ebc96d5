"""`time-hub select` degrades, never loses work: a damaged or half-written checkpoint is named and skipped, and the
selection is still written from the rest; a missing or empty run folder is one line."""

import json
import os

from test_trainer import _config, corpus  # noqa: F401 (the corpus fixture)

from time_hub.cli import main
from time_hub.distill.command import distill
from time_hub.distill.select import SelectArguments, select
from time_hub.distill.student import StudentArguments


def test_damaged_and_incomplete_checkpoints_are_skipped(tmp_path, tiny_bert_dir, corpus, capsys):  # noqa: F811
    run = tmp_path / "run"
    distill(_config(tiny_bert_dir, run, max_steps=4, save_steps=2), StudentArguments("L1-H48-A4"), corpus)
    os.truncate(run / "checkpoint-4" / "model.safetensors", 1000)  # damaged
    (run / "checkpoint-6").mkdir()  # half-written by a killed run: config only
    (run / "checkpoint-6" / "config.json").write_text((run / "config.json").read_text())
    selection = select(SelectArguments(str(run), validation_files=corpus.train_files, use_cpu=True))
    assert [c["checkpoint"] for c in selection.checkpoints] == ["checkpoint-2"]
    reasons = {s["checkpoint"]: s["reason"] for s in selection.skipped}
    assert "header" in reasons["checkpoint-4"] and reasons["checkpoint-6"].startswith(
        "incomplete: no checkpoint.complete"
    )
    saved = json.loads((run / "selection.json").read_text())
    assert saved["best"]["checkpoint"] == "checkpoint-2" and len(saved["skipped"]) == 2

    for name in ("checkpoint-2",):  # nothing left to score: one line, exit 2
        os.truncate(run / name / "model.safetensors", 1000)
    argv = ["select", str(run), "--validation_files", f"[{corpus.train_files[0]}]", "--use_cpu", "true"]
    assert main(argv) == 2
    assert "none of its 3 checkpoints can be scored" in capsys.readouterr().err


def test_missing_and_empty_run_folders_are_one_line(tmp_path, capsys):
    assert main(["select", str(tmp_path / "nothing")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'nothing'}: no such run folder"
    assert main(["select", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path}: no checkpoint-* folders to select from"
