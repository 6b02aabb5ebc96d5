"""The ablation table: one row per change to a student recipe, scored by the comparison protocol's saved results.

Each row names a folder of `benchmarks/protocol.py` per-seed results (`<task>-seed<N>.json`) and what differs from the
row it is compared with. Every cell is mean ± sd over the seeds found, and the difference of means to the compared
row (seed noise here is about 0.2-1 point, so a difference within about twice the larger sd means "no clear
change"). Writes `ablation.md` and `ablation.json` next to the results:

    python benchmarks/ablation.py --out benchmarks/results/protocol/da/ablation \\
        --row "evenly spaced + KD=benchmarks/results/protocol/da/cpu-s" \\
        --row "same init, no KD=benchmarks/results/protocol/da/cpu-s-no-kd@evenly spaced + KD"
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

METRICS = {"ud": ("UPOS", "Lemmas", "LAS"), "ner": ("f1",)}


def scores(folder: Path) -> dict[str, list[float]]:
    """metric -> one value per saved seed (seeds sorted), for every task found in `folder`."""
    out: dict[str, list[float]] = {}
    for task, metrics in METRICS.items():
        for path in sorted(folder.glob(f"{task}-seed*.json")):
            values = json.loads(path.read_text())["metrics"]
            for metric in metrics:
                out.setdefault(metric, []).append(values[metric])
    return out


def cell(values: list[float], reference: list[float] | None) -> str:
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    text = f"{mean:.2f} ± {sd:.2f}"
    if reference:
        text += f" ({mean - statistics.fmean(reference):+.2f})"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--row", action="append", required=True, help="LABEL=FOLDER[@LABEL of the compared row]")
    parser.add_argument("--out", type=Path, required=True, help="path without suffix: writes .md and .json")
    opts = parser.parse_args()
    rows = []
    for spec in opts.row:
        label, sep, rest = spec.partition("=")
        folder, _, compared = rest.partition("@")
        if not sep or not Path(folder).is_dir():
            parser.error(f"--row {spec!r}: expected LABEL=FOLDER[@LABEL] with an existing folder")
        rows.append(
            {"label": label, "folder": folder, "compared_with": compared or None, "scores": scores(Path(folder))}
        )
    by_label = {row["label"]: row for row in rows}
    unknown = [row["compared_with"] for row in rows if row["compared_with"] and row["compared_with"] not in by_label]
    if unknown:
        parser.error(f"compared rows {unknown} are not among the labels {list(by_label)}")
    metrics = [m for task in METRICS.values() for m in task if any(m in row["scores"] for row in rows)]
    lines = ["| change | compared with | seeds | " + " | ".join(metrics) + " |", "|" + "---|" * (3 + len(metrics))]
    for row in rows:
        reference = by_label[row["compared_with"]]["scores"] if row["compared_with"] else {}
        seeds = max((len(v) for v in row["scores"].values()), default=0)
        cells = [cell(row["scores"][m], reference.get(m)) if m in row["scores"] else "-" for m in metrics]
        lines.append(f"| {row['label']} | {row['compared_with'] or '-'} | {seeds} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    opts.out.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")
    opts.out.with_suffix(".md").write_text(
        "# Ablation: one row per change\n\nmean ± sd over seeds (difference of means to the compared row); "
        f"`python benchmarks/ablation.py` with the rows below.\n\n{table}\n"
    )
    print(table)


if __name__ == "__main__":
    main()
