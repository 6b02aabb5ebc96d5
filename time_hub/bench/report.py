"""bench.json: its schema, the terminal table with ratios to a reference model, and the plots.

Schema (version 1):

    {
      "schema": 1,
      "created": "<UTC ISO time>",
      "machine": {"platform", "processor", "cpu_count", "memory_gib", "gpu": <name or null>},
      "software": {"python", "torch", "transformers", "onnxruntime" (if installed), "time_hub"},
      "settings": {"device", "dtype", "threads", "warmup", "repeats", "energy_estimate", "batch_sizes",
                   "sentences_file", "sentences", "tokenizer", "reference", "median_of", "interval",
                   "latency_ratio" (how the ratios were measured)},
      "models": [{
        "name": <spec as given>, "kind": "pretrained" | "architecture (random weights)" | "student shape ..." | "onnx",
        "num_parameters": <int>, "threads": <int>,
        "energy_counter": {"name", "kind": "measured" | "estimate"} or null (no counter: energy not available),
        "results": [{"batch_size", "repeats",
                     "latency_ms": {"median", "mean", "p2_5", "p97_5"},     # per batch
                     "sentences_per_s", "tokens_per_s", "tokens_per_sentence",
                     "peak_memory_mb", "memory_kind",
                     "joules_per_sentence", "joules_per_token"}]           # null without a counter
      }],
      "ratios": {"<model>": {"<batch size>": {"latency", "throughput", "energy" (if measured)}}}  # vs reference;
                 # latency/throughput from a pass with the models run in turn on each batch (`interleave`)
    }
"""

from __future__ import annotations

import json
import math
from pathlib import Path

SCHEMA_VERSION = 1


def load_bench(path: str | Path) -> dict:
    data = json.loads(Path(path).read_text())
    if data.get("schema") != SCHEMA_VERSION:
        raise ValueError(f"{path}: missing or unsupported 'schema' (expected {SCHEMA_VERSION})")
    return data


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}" if abs(value) >= 0.1 or value == 0 else f"{value:.2g}"


def table(bench: dict) -> str:
    """A markdown table: one row per model x batch size, ratios to the reference (`x` = times faster)."""
    reference = bench["settings"]["reference"]
    ratios = bench.get("ratios", {})
    header = (
        "| model | params (M) | batch | latency ms (median [95% int.]) | sentences/s | tokens/s | peak mem MB "
        f"| J/sentence | latency vs {reference} | throughput vs {reference} |"
    )
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for model in bench["models"]:
        for row in model["results"]:
            ratio = ratios.get(model["name"], {}).get(str(row["batch_size"])) or {}
            lat = row["latency_ms"]
            lines.append(
                f"| {model['name']} | {model['num_parameters'] / 1e6:.1f} | {row['batch_size']} "
                f"| {_fmt(lat['median'])} [{_fmt(lat['p2_5'])}, {_fmt(lat['p97_5'])}] "
                f"| {_fmt(row['sentences_per_s'])} | {_fmt(row['tokens_per_s'], 0)} "
                f"| {_fmt(row['peak_memory_mb'], 0)} "
                f"| {_fmt(row['joules_per_sentence'], 3)} "
                f"| {_fmt(ratio.get('latency'), 2)}x | {_fmt(ratio.get('throughput'), 2)}x |"
            )
    counters = {json.dumps(m["energy_counter"]) for m in bench["models"]}
    note = "energy: " + (
        "not available (no NVML/RAPL counter on this machine)"
        if counters == {"null"}
        else "; ".join(m["energy_counter"]["name"] for m in bench["models"][:1] if m["energy_counter"])
    )
    return "\n".join(lines) + "\n\n" + note


def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and CI
    import matplotlib.pyplot as plt

    return plt


def plot_throughput(bench: dict, path: str | Path) -> Path:
    """Sentences/s vs batch size, one line per model (log-log)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for model in bench["models"]:
        rows = model["results"]
        ax.plot([r["batch_size"] for r in rows], [r["sentences_per_s"] for r in rows], marker="o", label=model["name"])
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size (sentences)")
    ax.set_ylabel("sentences / s")
    where = bench["machine"]["gpu"] or bench["machine"]["processor"]
    ax.set_title(f"Throughput on {bench['settings']['device']} ({bench['settings']['dtype']}, {where})")
    return _save(fig, ax, path)


def _save(fig, ax, path: str | Path) -> Path:
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    pyplot().close(fig)
    return Path(path)


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (higher x and higher y are better), sorted by x."""
    order = sorted(range(len(points)), key=lambda i: (-points[i][0], -points[i][1]))
    front, best_y = [], -math.inf
    for i in order:
        if points[i][1] > best_y:
            front.append(i)
            best_y = points[i][1]
    return sorted(front, key=lambda i: points[i][0])


def plot_pareto(
    bench: dict, quality: dict[str, float], metric: str, path: str | Path, axis: str = "sentences_per_s"
) -> Path:
    """Task quality (`quality[model]`, e.g. NER F1 from results.json) vs speed or energy at the largest batch size.

    `axis` is "sentences_per_s" (higher is better) or "joules_per_sentence" (plotted as sentences per joule).
    """
    plt = pyplot()
    names, points = [], []
    for model in bench["models"]:
        if model["name"] not in quality:
            continue
        row = max(model["results"], key=lambda r: r["batch_size"])
        if axis == "joules_per_sentence":
            if not row["joules_per_sentence"]:
                continue
            x = 1.0 / row["joules_per_sentence"]
        else:
            x = row[axis]
        names.append(model["name"])
        points.append((x, quality[model["name"]]))
    if not points:
        raise ValueError(f"no timed model has a quality score ({sorted(quality)}) and a value for {axis}")
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.scatter([p[0] for p in points], [p[1] for p in points], zorder=3)
    for name, (x, y) in zip(names, points):
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    front = pareto_front(points)
    ax.plot([points[i][0] for i in front], [points[i][1] for i in front], "--", color="gray", label="Pareto front")
    ax.set_xscale("log")
    ax.set_xlabel("sentences / joule" if axis == "joules_per_sentence" else "sentences / s")
    ax.set_ylabel(metric)
    versus = "energy" if axis == "joules_per_sentence" else "throughput"
    ax.set_title(f"{metric} vs {versus} ({bench['settings']['device']})")
    return _save(fig, ax, path)
