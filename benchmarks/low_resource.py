"""How much monolingual text is enough? The middle operating point distilled on more or less text, under the protocol.

Each point is a language and an amount of training text: the `cpu-s` student (the teacher's bottom 3 layers)
distilled with the same recipe and the same number of steps (`recipes/distill/cpu/s.yaml --max_steps 200
--teacher_layer 12`: MiniLMv2 relations towards the teacher's top layer plus the hidden-state term) on the first KB
of the language's text in ../shared, then fine-tuned on UD under the comparison protocol (`benchmarks/protocol.py`:
early stopping, 3 seeds, the same data and recipe as the teacher it is compared with). Every line of the
text that holds one of the language's UD sentences is left out first and counted (../shared's text files contain the
UD dev sentences, which are the protocol's train and eval data: ur's text is nothing else, ga's all but about 5 KB);
a point with no text left is reported and left out. The first min(400, 10%) of the remaining lines are held out
(checkpoint selection) and never trained on; `all` is every other line. The same student with no distillation step
(0 KB: the bottom layers as they are) is the baseline of each language.

    python benchmarks/low_resource.py --point da:60 --point da:250 --point da:all --point ga:all --point ur:all \
        --out benchmarks/results/low_resource

Out: `<out>/<lang>/<encoder>/ud-seed<N>.json` per fine-tuning (re-used when present, so an interrupted study
continues), `<out>/study.json`, `<out>/study.md` and `<out>/retention-vs-text.png`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from transformers import AutoTokenizer

from time_hub.tasks.conllu import read_conllu
from time_hub.tasks.silver import text_lines

sys.path.insert(0, str(Path(__file__).resolve().parent))
from protocol import METRICS, SHARED, TEACHER, prepare_data, run_one, summarize  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DISTILL = ["--config", "recipes/distill/cpu/s.yaml", "--max_steps", "200", "--teacher_layer", "12"]
BASELINE = "no-step"  # the bottom 3 layers as they are (0 KB of text)
TOKENS_PER_STEP = 16 * 128  # the recipe's batch x sequence length (packed)


def split_text(lang: str, kb: int | None, work: Path) -> tuple[Path, Path, int]:
    """(train, held-out, lines left out): the language's text minus every line that holds one of its UD sentences
    (../shared's text files hold them: distilling on them would be training on the eval data), the held-out first
    min(400, 10%) of the rest, then the first `kb` KB after them (whole lines; all of it for None)."""
    gold = [s for conllu in sorted((SHARED / "data" / "ud" / lang).glob("*.conllu")) for s in read_conllu(conllu)]
    lines, dropped = text_lines([str(SHARED / "data" / "text" / f"{lang}.txt")], gold)
    held = min(400, len(lines) // 10)
    train, size = [], 0
    for line in lines[held:]:
        if kb is not None and size >= kb * 1000:
            break
        train.append(line)
        size += len(line.encode("utf-8")) + 1
    work.mkdir(parents=True, exist_ok=True)
    name = "all" if kb is None else f"{kb}kb"
    paths = work / f"{lang}-{name}-train.txt", work / f"{lang}-heldout.txt"
    paths[0].write_text("".join(f"{line}\n" for line in train), encoding="utf-8")
    paths[1].write_text("".join(f"{line}\n" for line in lines[:held]), encoding="utf-8")
    return *paths, dropped


def distill(train: Path, held_out: Path, output_dir: Path) -> Path:
    """The distilled student's selected checkpoint (`best/`), distilled unless it is there already."""
    if not (output_dir / "best").is_dir():
        files = [
            "--train_files",
            f"[{train}]",
            "--validation_files",
            f"[{held_out}]",
            "--validation_holdout_lines",
            "0",
        ]
        cli = [sys.executable, "-m", "time_hub.cli"]
        subprocess.run([*cli, "distill", *DISTILL, *files, "--output_dir", str(output_dir)], cwd=ROOT, check=True)
        subprocess.run([*cli, "select", str(output_dir)], cwd=ROOT, check=True)
    return output_dir / "best"


def tokens(path: Path, tokenizer) -> int:
    text = path.read_text(encoding="utf-8").splitlines()
    return sum(len(ids) for ids in tokenizer(text, add_special_tokens=False)["input_ids"])


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = METRICS["ud"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for lang in sorted({r["lang"] for r in rows}):
            points = sorted((r for r in rows if r["lang"] == lang and r["train_kb"]), key=lambda r: r["train_kb"])
            line = ax.errorbar(
                [r["train_kb"] for r in points],
                [r["scores"][metric]["retention"] for r in points],
                yerr=[r["scores"][metric]["retention_sd"] for r in points],
                marker="o", capsize=3, label=f"{lang}, distilled 200 steps",
            )  # fmt: skip
            baseline = next((r for r in rows if r["lang"] == lang and not r["train_kb"]), None)
            if baseline:
                ax.axhline(baseline["scores"][metric]["retention"], ls="--", color=line[0].get_color(), lw=1,
                           label=f"{lang}, no distillation step")  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel("training text (KB)")
        ax.set_ylabel(f"{metric}: % of the teacher")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(
        "cpu-s (bottom 3 of 12 layers): retention vs monolingual text, UD dev, mean ± sd of 3 seeds", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(rows: list[dict]) -> str:
    head = ["language", "text (KB)", "text tokens", "epochs over it", *(f"{m} (retention)" for m in METRICS["ud"])]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["lang"], str(r["train_kb"]) if r["train_kb"] else "0 (no step)", f"{r['train_tokens']:,}"]
        cells.append(f"{r['epochs']:.1f}" if r["epochs"] else "-")
        for metric in METRICS["ud"]:
            cell = r["scores"][metric]
            cells.append(f"{cell['mean']:.2f} ± {cell['sd']:.2f} ({cell['retention']:.1f}%)")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--point", action="append", required=True, help="LANG:KB or LANG:all (repeatable)")
    parser.add_argument("--baseline", default="runs/first3-da", help="the bottom 3 layers, no step (time-hub prune)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "low_resource")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "low_resource")
    opts = parser.parse_args()
    points: dict[str, list[int | None]] = {}
    for spec in opts.point:
        lang, _, kb = spec.partition(":")
        if not (SHARED / "data" / "text" / f"{lang}.txt").is_file() or not (kb == "all" or kb.isdigit()):
            parser.error(f"--point {spec}: expected LANG:KB or LANG:all for a language with text in {SHARED}")
        points.setdefault(lang, []).append(None if kb == "all" else int(kb))

    tokenizer = AutoTokenizer.from_pretrained(SHARED / "teachers" / "me5-small")
    rows, left_out = [], {}
    for lang, sizes in points.items():
        data = prepare_data(lang, opts.work / lang)["ud"]
        encoders = {TEACHER: (SHARED / "teachers" / "me5-small", None), BASELINE: (Path(opts.baseline), None)}
        for kb in sizes:
            train, held_out, dropped = split_text(lang, kb, opts.work / "text")
            name = "all" if kb is None else f"{kb}kb"
            print(f"{lang}:{name}: {dropped} lines of the text hold a UD sentence and are left out")
            left_out[lang] = dropped
            if not train.stat().st_size:
                print(f"{lang}:{name}: no text left to distill on: the point is left out")
                continue
            encoders[name] = (distill(train, held_out, opts.work / f"{lang}-{name}"), train)
        scores: dict[str, dict[str, list[float]]] = {}
        for name, (path, _) in encoders.items():
            for seed in opts.seeds:
                metrics = run_one(name, path, "ud", data, seed, opts.out / lang, opts.work / lang, False)
                for metric, value in metrics.items():
                    scores.setdefault(name, {}).setdefault(metric, []).append(value)
        summary = summarize(scores, {})
        for name, (_, train) in encoders.items():
            if name == TEACHER:
                continue
            size = tokens(train, tokenizer) if train else 0
            teacher = summary[TEACHER]
            rows.append({
                "lang": lang, "encoder": name,
                "train_kb": round(train.stat().st_size / 1000) if train else 0,
                "train_tokens": size, "epochs": 200 * TOKENS_PER_STEP / size if size else None,
                "scores": {m: cell | {"retention_sd": 100 * cell["sd"] / teacher[m]["mean"]}
                           for m, cell in summary[name].items()},
                "teacher": {m: teacher[m] for m in summary[name]},
            })  # fmt: skip
    opts.out.mkdir(parents=True, exist_ok=True)
    (opts.out / "study.json").write_text(json.dumps({"rows": rows, "ud_lines_left_out": left_out}, indent=1) + "\n")
    (opts.out / "study.md").write_text(markdown(rows) + "\n")
    plot(rows, opts.out / "retention-vs-text.png")
    print(markdown(rows))


if __name__ == "__main__":
    main()
