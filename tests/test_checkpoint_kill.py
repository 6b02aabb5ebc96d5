"""A distillation killed with SIGKILL at any moment of a checkpoint write resumes (`--resume_from_checkpoint last`) to
the same final student as an uninterrupted run: a checkpoint counts only once its completion marker is on disk."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from time_hub.run_dir import RunDir

# Seconds after checkpoint-4/ appears: the early ones land inside the write, the late ones after it.
KILL_DELAYS = (0.0, 0.005, 0.02, 0.3)


def _argv(teacher, corpus, out, *extra):
    argv = [sys.executable, "-m", "time_hub.cli", "distill", "--teacher_name_or_path", str(teacher),
            "--output_dir", str(out), "--train_files", f"[{corpus}]", "--validation_holdout_lines", "40",
            "--student_shape", "L1-H48-A4-I96", "--num_relation_heads", "4", "--max_steps", "6", "--save_steps", "2",
            "--per_device_train_batch_size", "4", "--max_seq_length", "32", "--learning_rate", "1.0e-3",
            "--use_cpu", "true", "--report_to", "none", "--max_validation_sequences", "8", "--seed", "0"]  # fmt: skip
    return [*argv, *extra]


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


@pytest.mark.slow
def test_resume_after_a_kill_during_a_checkpoint_write_matches(tmp_path, tiny_bert_dir, da_lines, capsys):
    corpus = tmp_path / "da.txt"
    corpus.write_text("\n".join(da_lines[:400]) + "\n", encoding="utf-8")
    straight = tmp_path / "straight"
    subprocess.run(_argv(tiny_bert_dir, corpus, straight), env=_env(), check=True, capture_output=True, timeout=600)
    reference = load_file(straight / "model.safetensors")

    partial = matched = 0
    for i, delay in enumerate(KILL_DELAYS):
        out = tmp_path / f"killed-{i}"
        process = subprocess.Popen(_argv(tiny_bert_dir, corpus, out), env=_env(), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)  # fmt: skip
        while not (out / "checkpoint-4").exists() and process.poll() is None:
            time.sleep(0.001)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        run = RunDir(out)
        partial += (out / "checkpoint-4").is_dir() and not run.is_complete(out / "checkpoint-4")
        resumed = subprocess.run(_argv(tiny_bert_dir, corpus, out, "--resume_from_checkpoint", "last"), env=_env(),
                                 capture_output=True, text=True, timeout=600)  # fmt: skip
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        final = load_file(out / "model.safetensors")
        for name in reference:
            torch.testing.assert_close(final[name], reference[name], rtol=1e-4, atol=1e-5)
        assert all(run.is_complete(c) for c in run.checkpoints())  # no half-written checkpoint is left behind
        matched += 1
    with capsys.disabled():
        print(f"\nkill points {len(KILL_DELAYS)}, inside a checkpoint write {partial}, resumes matched {matched}")
    assert matched == len(KILL_DELAYS) and partial >= 1
