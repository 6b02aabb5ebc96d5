"""One distillation step (forward + backward): DistillationTrainer vs a naive reference, same models and batch.

Naive reference: teacher and student run fully with `output_attentions`/`output_hidden_states` (eager attention),
Q/K/V are recomputed from the distillation layers' input hidden states, and the relation loss is a per-example
Python loop over real tokens. Ours: teacher truncated after its layer, SDPA, Q/K/V from forward hooks, masked and
head-chunked fp32 loss. Each variant runs in its own process; peak memory is the step's peak above the memory held
after loading (CUDA: allocator peak; CPU: resident set size sampled every 2 ms). Prints ratios; writes JSON.

    python benchmarks/distill_step.py                       # CPU: me5-small teacher -> L4-H256-A4, batch 32 x 512
    python benchmarks/distill_step.py --device cuda --student m --json benchmarks/results/distill_step-cuda.json
    # the TiME setting: a 24-layer teacher distilled at layer 12 (me5-small widths, random weights: same speed)
    python benchmarks/distill_step.py --teacher_layers 24 --teacher_layer 12
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TEACHER = ROOT.parent / "shared" / "teachers" / "me5-small"
DEFAULT_TEXT = ROOT.parent / "shared" / "data" / "text" / "da.txt"


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakMemory:
    """Peak memory above the level at `start()`."""

    def __init__(self, device):
        self.device = device

    def __enter__(self):
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            self.base, self.peak, self.running = _rss_bytes(), 0, True

            def sample():
                while self.running:
                    self.peak = max(self.peak, _rss_bytes())
                    time.sleep(0.002)

            self.thread = threading.Thread(target=sample, daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc):
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.extra = torch.cuda.max_memory_allocated() - self.base
        else:
            self.running = False
            self.thread.join()
            self.extra = max(self.peak, _rss_bytes()) - self.base


def make_batch(tokenizer, batch: int, seq: int, text: Path):
    """Real Danish text packed to `seq`, with example lengths spread over [seq/2, seq] so masking matters."""
    from collections import Counter

    import torch

    from time_hub.distill.data import read_lines, token_sequences

    lines = read_lines(str(text), Counter())
    sequences = []
    for ids in token_sequences(lines, tokenizer, seq, packing=True):
        sequences.append(ids)
        if len(sequences) == batch:
            break
    input_ids = torch.full((batch, seq), tokenizer.pad_token_id)
    mask = torch.zeros(batch, seq, dtype=torch.long)
    for i, ids in enumerate(sequences):
        n = seq // 2 + (seq // 2) * i // max(1, batch - 1)
        input_ids[i, :n] = torch.tensor(ids[:n])
        mask[i, :n] = 1
    return input_ids, mask


def naive_loss(teacher, student, input_ids, mask, teacher_layer, student_layer, heads):
    import torch

    with torch.no_grad():
        t_out = teacher(input_ids=input_ids, attention_mask=mask, output_attentions=True, output_hidden_states=True)
        t_att = teacher.encoder.layer[teacher_layer - 1].attention.self
        t_hidden = t_out.hidden_states[teacher_layer - 1]
        t_qkv = (t_att.query(t_hidden), t_att.key(t_hidden), t_att.value(t_hidden))
    s_out = student(input_ids=input_ids, attention_mask=mask, output_attentions=True, output_hidden_states=True)
    s_att = student.encoder.layer[student_layer - 1].attention.self
    s_hidden = s_out.hidden_states[student_layer - 1]
    s_qkv = (s_att.query(s_hidden), s_att.key(s_hidden), s_att.value(s_hidden))

    def relation(x, n):
        a = x[:n].view(n, heads, -1).transpose(0, 1)
        return torch.log_softmax(a @ a.transpose(1, 2) / math.sqrt(a.shape[-1]), dim=-1)

    total = 0.0
    for b in range(input_ids.shape[0]):
        n = int(mask[b].sum())
        for i in range(3):
            t, s = relation(t_qkv[i][b], n), relation(s_qkv[i][b], n)
            total = total + (t.exp() * (t - s)).sum() / (heads * n)
    return total / input_ids.shape[0]


def worker(opts) -> dict:
    import torch
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from time_hub.bench.models import CONFIGS
    from time_hub.distill.config import TEACHER_DTYPES, DistillationConfig
    from time_hub.distill.student import build_student
    from time_hub.distill.trainer import DistillationTrainer, load_teacher

    torch.set_num_threads(opts.threads or torch.get_num_threads())
    device = torch.device(opts.device)
    tokenizer = AutoTokenizer.from_pretrained(opts.teacher)
    dtype = TEACHER_DTYPES[opts.teacher_dtype]
    if opts.teacher_arch:  # e.g. XLM-R-Large's shape with random weights (the same speed), our tokenizer's vocabulary
        torch.manual_seed(0)
        config = copy.deepcopy(CONFIGS[opts.teacher_arch])
        config.vocab_size = len(tokenizer)
        teacher = AutoModel.from_config(config, add_pooling_layer=False, dtype=dtype).to(device)
    elif opts.teacher_layers:  # a deeper teacher of the same widths; random weights run at the same speed
        torch.manual_seed(0)
        config = AutoConfig.from_pretrained(opts.teacher, num_hidden_layers=opts.teacher_layers)
        teacher = AutoModel.from_config(config, add_pooling_layer=False, dtype=dtype).to(device)
    else:
        teacher = load_teacher(str(opts.teacher), opts.teacher_dtype).to(device)
    student = build_student(teacher.config, tokenizer, opts.student, seed=0).to(device)
    input_ids, mask = (t.to(device) for t in make_batch(tokenizer, opts.batch, opts.seq, opts.text))
    layers = (opts.teacher_layer or teacher.config.num_hidden_layers, student.config.num_hidden_layers)

    if opts.variant == "ours":
        config = DistillationConfig(
            output_dir="/tmp/distill-step-bench",
            report_to="none",
            use_cpu=device.type == "cpu",
            teacher_name_or_path=str(opts.teacher),
            teacher_layer=layers[0],
            num_relation_heads=opts.heads,
            teacher_dtype=opts.teacher_dtype,
        )
        trainer = DistillationTrainer(student, config, teacher_model=teacher)
        student.train()

        def step():
            return trainer.compute_loss(student, {"input_ids": input_ids, "attention_mask": mask})
    else:
        teacher.set_attn_implementation("eager")
        student.set_attn_implementation("eager")
        teacher.eval().requires_grad_(False)
        student.train()

        def step():
            return naive_loss(teacher, student, input_ids, mask, *layers, opts.heads)

    def run():
        student.zero_grad(set_to_none=True)
        loss = step()
        loss.backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return loss.item()

    torch.manual_seed(0)
    run()  # warm-up (kernels, allocator)
    times = []
    with PeakMemory(device) as peak:
        for _ in range(opts.steps):
            torch.manual_seed(0)  # same dropout masks in both variants
            start = time.perf_counter()
            loss = run()
            times.append(time.perf_counter() - start)
    real_tokens = int(mask.sum())
    return {
        "variant": opts.variant,
        "loss": loss,
        "seconds_per_step": min(times),
        "tokens_per_second": real_tokens / min(times),
        "peak_memory_bytes": peak.extra,
        "real_tokens_per_batch": real_tokens,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", type=Path, default=DEFAULT_TEACHER)
    parser.add_argument("--student", default="L4-H256-A4")
    parser.add_argument("--heads", type=int, default=32, help="relation heads (divide both hidden sizes)")
    parser.add_argument("--teacher_layers", type=int, default=0, help="build a teacher this deep (random weights)")
    parser.add_argument("--teacher_layer", type=int, default=0, help="distillation layer (default: last)")
    parser.add_argument("--teacher_arch", choices=["xlm-roberta-large"], help="this shape, random weights")
    parser.add_argument("--teacher_dtype", default="float32", help="float32, bfloat16 or float16 (GPU)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--text", type=Path, default=DEFAULT_TEXT)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--variant", choices=["ours", "naive"], help=argparse.SUPPRESS)
    opts = parser.parse_args()

    if opts.variant:  # child process
        print(json.dumps(worker(opts)))
        return
    results = {}
    for variant in ("ours", "naive"):
        cmd = [sys.executable, __file__, *sys.argv[1:], "--variant", variant]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        results[variant] = json.loads(out.strip().splitlines()[-1])
    ours, naive = results["ours"], results["naive"]
    report = {
        "setup": {
            "teacher": str(opts.teacher.name),
            "teacher_layers": opts.teacher_layers or "as stored",
            "teacher_layer": opts.teacher_layer or "last",
            "student": opts.student,
            "relation_heads": opts.heads,
            "batch": opts.batch,
            "seq": opts.seq,
            "device": opts.device,
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
            "steps_timed": opts.steps,
        },
        "ours": ours,
        "naive": naive,
        "tokens_per_second_ratio": ours["tokens_per_second"] / naive["tokens_per_second"],
        "peak_memory_ratio": ours["peak_memory_bytes"] / naive["peak_memory_bytes"],
        "loss_abs_diff": abs(ours["loss"] - naive["loss"]),
    }
    print(f"setup: {report['setup']}")
    for name in ("ours", "naive"):
        r = results[name]
        print(
            f"{name:>5}: {r['tokens_per_second']:9.0f} tokens/s  {r['seconds_per_step']:7.2f} s/step  "
            f"peak +{r['peak_memory_bytes'] / 2**30:6.2f} GiB  loss {r['loss']:.5f}"
        )
    print(f"tokens/s ratio (ours/naive): {report['tokens_per_second_ratio']:.2f}x  (target >= 2x)")
    print(f"peak memory ratio (ours/naive): {report['peak_memory_ratio']:.2f}x  (target <= 0.5x)")
    print(f"|loss difference|: {report['loss_abs_diff']:.2e} (same loss, two implementations)")
    if opts.json:
        opts.json.parent.mkdir(parents=True, exist_ok=True)
        opts.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
