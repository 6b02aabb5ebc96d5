"""The hub's leaderboard, made from the committed result files alone (`time-hub release` writes them):

    <results_dir>/<lang>/teacher/<task>.json          the teacher fine-tuned with the same recipe (retention)
    <results_dir>/<lang>/<size>/<task>.json           the model's dev scores
    <results_dir>/<lang>/<size>/bench.json            batch-1 / batch-32 speed vs the teacher, parameters
    <results_dir>/<lang>/<size>/model.json            repo id, teacher, weights on disk
    <results_dir>/<lang>/<size>-random/<task>.json    a random-init copy fine-tuned the same way (the gap)

-> `leaderboard.md` and `leaderboard.json` in `results_dir`: one row per language x size.
"""

from __future__ import annotations

import json
from pathlib import Path

from time_hub.atomic import write_json, write_text
from time_hub.tasks.results import TaskResults

MODEL_FILE = "model.json"
METRICS = (("ud", "UPOS"), ("ud", "Lemmas"), ("ud", "LAS"), ("ner", "f1"))
SIZE_ORDER = {"m": 0, "s": 1, "xs": 2}


def _scores(folder: Path) -> dict[str, float]:
    scores = {}
    for task, metric in METRICS:
        path = folder / f"{task}.json"
        if path.is_file():
            value = TaskResults.load(path).metrics.get(metric)
            if value is not None:
                scores[metric] = value
    return scores


def rows(results_dir: Path) -> list[dict]:
    out = []
    for model_file in sorted(results_dir.glob(f"*/*/{MODEL_FILE}")):
        folder, lang = model_file.parent, model_file.parent.parent.name
        size = folder.name
        model = json.loads(model_file.read_text(encoding="utf-8"))
        bench = json.loads((folder / "bench.json").read_text(encoding="utf-8"))
        name = next(m for m in bench["models"] if m["name"] != bench["settings"]["reference"])
        teacher = _scores(folder.parent / "teacher")
        random = _scores(folder.parent / f"{size}-random")
        scores = _scores(folder)
        out.append(
            {
                "lang": lang,
                "size": size,
                "repo_id": model["repo_id"],
                "parameters": name["num_parameters"],
                "disk_mb": model["disk_bytes"] / 1e6,
                "speedup_b1": bench["ratios"][name["name"]].get("1", {}).get("latency"),
                "speedup_b32": bench["ratios"][name["name"]].get("32", {}).get("throughput"),
                "scores": scores,
                "teacher": teacher,
                "retention": {k: v / teacher[k] for k, v in scores.items() if teacher.get(k)},
                "random_gap": {k: v - random[k] for k, v in scores.items() if k in random},
            }
        )
    return sorted(out, key=lambda r: (r["lang"], SIZE_ORDER.get(r["size"], 9), r["size"]))


def markdown(table: list[dict]) -> str:
    head = ["language", "size", "params", "disk MB", "speed-up b1", "throughput b32"]
    head += [f"{m} (retention)" for _, m in METRICS] + ["LAS - random init"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table:
        cells = [r["lang"], r["size"], f"{r['parameters'] / 1e6:.1f}M", f"{r['disk_mb']:.0f}"]
        cells += [f"{x:.2f}x" if x else "-" for x in (r["speedup_b1"], r["speedup_b32"])]
        for _, metric in METRICS:
            value, kept = r["scores"].get(metric), r["retention"].get(metric)
            cells.append("-" if value is None else f"{value:.2f}" + (f" ({100 * kept:.1f}%)" if kept else ""))
        gap = r["random_gap"].get("LAS")
        cells.append("-" if gap is None else f"{gap:+.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_leaderboard(results_dir: Path) -> Path | None:
    """Rewrite leaderboard.md/.json from the files under `results_dir`; None when no model has finished yet."""
    table = rows(results_dir)
    if not table:
        return None
    write_json(results_dir / "leaderboard.json", {"models": table})
    path = results_dir / "leaderboard.md"
    write_text(
        path,
        "# Leaderboard\n\nDev scores in % (retention = model / the teacher fine-tuned with the same recipe on the "
        "same data); speed-ups vs the teacher, measured with `time-hub bench` on the machine that built the model "
        "(teacher and student run in turn on each batch; batch 1: the median of the per-sentence ratios). "
        "Made by `time-hub release` from the files in this folder.\n\n" + markdown(table) + "\n",
    )
    return path
