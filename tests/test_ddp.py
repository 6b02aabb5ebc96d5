"""DistillationTrainer under torchrun: 2 CPU processes (gloo) end with the same student.

Each rank sees different batches, so the ranks agree only if DDP really all-reduces the gradients (it silently does
not when the loss bypasses the wrapped forward's outputs, which a hook-based loss does unless handled)."""

import hashlib
import os
import socket
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import hashlib, sys
    import torch
    from time_hub.distill.config import DistillationConfig
    from time_hub.distill.data import CorpusArguments
    from time_hub.distill.student import StudentArguments
    from time_hub.distill.command import distill

    teacher, corpus, out = sys.argv[1:4]
    args = DistillationConfig(
        output_dir=out, teacher_name_or_path=teacher, num_relation_heads=4, max_steps=4, save_steps=4,
        per_device_train_batch_size=4, learning_rate=1e-3, use_cpu=True, report_to="none", seed=0,
        disable_tqdm=True,
    )
    trainer = distill(args, StudentArguments("L2-H32-A2"), CorpusArguments(
        train_files=[corpus], validation_holdout_lines=20, max_seq_length=32))
    digest = hashlib.sha256()
    for name, value in sorted(trainer.accelerator.unwrap_model(trainer.model).state_dict().items()):
        digest.update(name.encode() + value.detach().cpu().numpy().tobytes())
    rank = trainer.args.process_index
    open(f"{out}/rank{rank}.sha", "w").write(f"{trainer.args.world_size} {digest.hexdigest()}")
    """
)


@pytest.mark.slow
def test_two_process_ddp_ranks_agree_on_the_saved_student(tmp_path, tiny_bert_dir, da_lines):
    corpus = tmp_path / "da.txt"
    corpus.write_text("\n".join(da_lines[:300]) + "\n", encoding="utf-8")
    script = tmp_path / "ddp_distill.py"
    script.write_text(SCRIPT)
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", port]
    result = subprocess.run(
        [*cmd, str(script), str(tiny_bert_dir), str(corpus), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    ranks = [(out / f"rank{r}.sha").read_text().split() for r in (0, 1)]
    assert ranks[0] == ranks[1] and ranks[0][0] == "2"
    assert (out / "checkpoint-4" / "model.safetensors").exists()
    # rank 0 saved exactly the weights every rank holds
    from safetensors.torch import load_file

    saved = load_file(out / "model.safetensors")
    digest = hashlib.sha256()
    for name, value in sorted(saved.items()):
        digest.update(name.encode() + value.numpy().tobytes())
    assert digest.hexdigest() == ranks[0][1]
