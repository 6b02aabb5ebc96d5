"""Timing one model: the same tokenized batches for every model, warm-up, repeats, latency spread, memory, energy.

Each model is timed in its own fresh process (`measure_isolated`), so that its peak memory is its own and no
allocator or cache state carries over from the model timed before it. Tokenization happens before timing: every
model compared here shares the XLM-R tokenizer, so it would add the same cost to all of them.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import re
import resource
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from time_hub.bench import energy
from time_hub.bench.models import forward, load


@dataclass
class TimingSettings:
    device: str = "cpu"
    dtype: str = "fp32"
    threads: int | None = None
    warmup: int = 2
    repeats: int = 10
    sort_by_length: bool = field(
        default=True,
        metadata={"help": "batches of similar lengths, as pipelines run them (false: padded as they come)"},
    )
    energy_estimate: bool = False


def make_batches(
    sentences: list[str], tokenizer, batch_size: int, count: int, max_length: int, sort_by_length: bool = False
) -> list[dict]:
    """`count` batches of `batch_size` consecutive sentences (cycling through the file), padded to their longest.

    With `sort_by_length`, the same sentences are sorted by token count before batching (batches of similar
    lengths, little padding), and the batches are then put back in a fixed pseudo-random order.
    """
    texts = [sentences[i % len(sentences)] for i in range(count * batch_size)]
    if sort_by_length:
        lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]]
        texts = [t for _, t in sorted(zip(lengths, texts), key=lambda pair: pair[0])]
    chunks = [texts[i * batch_size : (i + 1) * batch_size] for i in range(count)]
    if sort_by_length:
        chunks = [chunks[i] for i in np.random.default_rng(0).permutation(count)]
    return [
        dict(tokenizer(chunk, padding=True, truncation=True, max_length=max_length, return_tensors="pt"))
        for chunk in chunks
    ]


def latency_summary(seconds: list[float]) -> dict[str, float]:
    """Median, mean and the empirical 95% interval (2.5th-97.5th percentile) of per-batch latency, in ms."""
    ms = np.asarray(seconds) * 1e3
    return {
        "median": float(np.median(ms)),
        "mean": float(ms.mean()),
        "p2_5": float(np.percentile(ms, 2.5)),
        "p97_5": float(np.percentile(ms, 97.5)),
    }


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _peak_memory_mb(device: str) -> tuple[float, str]:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20, "cuda max_memory_allocated"
    # The process's peak so far (batch sizes run in ascending order). VmHWM, not ru_maxrss: Linux carries ru_maxrss
    # over fork+exec, so a spawned child would report its (possibly larger) parent's peak.
    try:
        status = Path("/proc/self/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024, "process peak RSS (VmHWM)"
    except (OSError, AttributeError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process peak RSS (ru_maxrss)"


def time_batches(loaded, batches: list[dict], settings: TimingSettings, counter) -> dict:
    """Warm up on the first batches, then time each of the others once (every model gets the same batches)."""
    device = settings.device
    batches = [{k: v.to(device) for k, v in b.items()} for b in batches] if device != "cpu" else batches
    for batch in batches[: settings.warmup]:
        forward(loaded, batch)
    _sync(device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    timed = batches[settings.warmup :]
    seconds, sentences, tokens = [], 0, 0
    joules_start = counter.read() if counter else None
    for batch in timed:
        start = time.perf_counter()
        forward(loaded, batch)
        _sync(device)
        seconds.append(time.perf_counter() - start)
        sentences += len(batch["input_ids"])
        tokens += int(batch["attention_mask"].sum())
    joules = counter.read() - joules_start if counter else None
    total = sum(seconds)
    memory, memory_kind = _peak_memory_mb(device)
    return {
        "batch_size": len(timed[0]["input_ids"]),
        "repeats": len(seconds),
        "latency_ms": latency_summary(seconds),
        "sentences_per_s": sentences / total,
        "tokens_per_s": tokens / total,
        "tokens_per_sentence": tokens / sentences,
        "peak_memory_mb": memory,
        "memory_kind": memory_kind,
        "joules_per_sentence": None if joules is None else joules / sentences,
        "joules_per_token": None if joules is None else joules / tokens,
    }


def measure(spec: str, tokenizer: str, sentences: list[str], batch_sizes: list[int], settings: TimingSettings):
    """Time `spec` at every batch size (ascending); returns the model's entry of bench.json."""
    if settings.threads:
        torch.set_num_threads(settings.threads)
    loaded = load(spec, tokenizer, settings.device, settings.dtype, settings.threads)
    counter = energy.open_counter(settings.device, settings.energy_estimate)
    count = settings.warmup + settings.repeats
    results = []
    for batch_size in sorted(batch_sizes):
        batches = make_batches(
            sentences, loaded.tokenizer, batch_size, count, loaded.max_length, settings.sort_by_length
        )
        results.append(time_batches(loaded, batches, settings, counter))
    return {
        "name": spec,
        "kind": loaded.kind,
        "num_parameters": loaded.num_parameters,
        "threads": torch.get_num_threads() if loaded.kind != "onnx" else settings.threads,
        "energy_counter": None if counter is None else {"name": counter.name, "kind": counter.kind},
        "results": results,
    }


def in_fresh_process(function, *args):
    """`function(*args)` in a fresh spawned process (own peak memory, no state from what was timed before)."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(function, *args).result()


def measure_isolated(spec: str, tokenizer: str, sentences: list[str], batch_sizes: list[int], settings):
    """`measure` in a fresh spawned process."""
    return in_fresh_process(measure, spec, tokenizer, sentences, batch_sizes, settings)


def interleaved_seconds(
    specs: list[str], tokenizer: str, sentences: list[str], batch_sizes: list[int], settings: TimingSettings
) -> list[dict[int, list[float]]]:
    """Per model (in `specs` order) and batch size, the seconds of each timed batch, with the models run in turn on
    each batch (the order rotating), all in this process: a slow phase of the machine hits every model alike, which
    timing one model after the other does not (batch-1 ratios of one pair measured 2.6-3.9x that way on a quiet
    machine)."""
    if settings.threads:
        torch.set_num_threads(settings.threads)
    models = [load(spec, tokenizer, settings.device, settings.dtype, settings.threads) for spec in specs]
    count = settings.warmup + settings.repeats
    seconds: list[dict[int, list[float]]] = [{} for _ in specs]
    for batch_size in sorted(batch_sizes):
        batches = [
            [{k: v.to(settings.device) for k, v in b.items()} for b in
             make_batches(sentences, m.tokenizer, batch_size, count, m.max_length, settings.sort_by_length)]
            for m in models
        ]  # fmt: skip
        for i in range(count):
            for j in [*range(i % len(specs), len(specs)), *range(i % len(specs))]:
                start = time.perf_counter()
                forward(models[j], batches[j][i])
                _sync(settings.device)
                if i >= settings.warmup:
                    seconds[j].setdefault(batch_size, []).append(time.perf_counter() - start)
    return seconds


def interleaved_ratios(seconds: list[dict[int, list[float]]], reference: int) -> list[dict[int, dict[str, float]]]:
    """Per model and batch size, from `interleaved_seconds`: `latency`, the median over batches of the reference's
    time / the model's time on the same batch, and `throughput`, the reference's total time / the model's over the
    same batches (>1 means faster than the reference)."""
    ratios = []
    for rows in seconds:
        ratios.append({})
        for b, times in rows.items():
            ref, own = np.asarray(seconds[reference][b]), np.asarray(times)
            ratios[-1][b] = {"latency": float(np.median(ref / own)), "throughput": float(ref.sum() / own.sum())}
    return ratios


def speedups(
    entries: list[dict], reference: str, interleaved: list[dict[int, dict[str, float]]] | None = None
) -> dict[str, dict[int, dict[str, float]]]:
    """Per model and batch size: latency and throughput ratios to `reference` (>1 means faster than it); from
    `interleaved` (per entry, `interleaved_ratios`) when given, else ratios of the per-model medians and rates."""
    ref = next((e for e in entries if e["name"] == reference), None)
    if ref is None:
        raise ValueError(f"--reference {reference!r} is not one of the timed models {[e['name'] for e in entries]}")
    ref_rows = {r["batch_size"]: r for r in ref["results"]}
    ratios: dict[str, dict[int, dict[str, float]]] = {}
    for k, entry in enumerate(entries):
        for row in entry["results"]:
            base = ref_rows.get(row["batch_size"])
            if base is None:
                continue
            ratio = {
                "latency": base["latency_ms"]["median"] / row["latency_ms"]["median"],
                "throughput": row["tokens_per_s"] / base["tokens_per_s"],
            } | (interleaved[k][row["batch_size"]] if interleaved else {})
            if row["joules_per_token"] and base["joules_per_token"]:
                ratio["energy"] = base["joules_per_token"] / row["joules_per_token"]
            ratios.setdefault(entry["name"], {})[row["batch_size"]] = ratio
    return ratios


def settings_dict(settings: TimingSettings) -> dict:
    return asdict(settings) | {"median_of": "per-batch latency", "interval": "empirical 2.5-97.5 percentile"}
