"""ONNX fp32 and dynamic int8 vs PyTorch fp32 on CPU: speed of the `xs` shape, accuracy on a real task dev set.

1. Speed: an `xs` student with the full XLM-R vocabulary (random weights: speed does not depend on them) is saved,
   exported with `time-hub export --quantize true`, and the three variants are timed by `time-hub bench` on the same
   sentences (batch 1 and 32).
2. Accuracy: each fine-tuned NER model given with --ner is exported the same way and scored on the Danish NER dev
   set as PyTorch fp32, ONNX fp32 and ONNX int8 (`export.json`), and its three variants are timed too.

    python benchmarks/onnx_int8.py --ner runs/da_tasks/teacher/ner runs/da_tasks_demo/distilled/ner \
        --out benchmarks/results/onnx-int8
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from time_hub.atomic import write_json
from time_hub.bench.command import BenchArguments, bench
from time_hub.bench.export import ExportArguments, export
from time_hub.bench.measure import TimingSettings
from time_hub.bench.models import load
from time_hub.bench.report import table

SHARED = Path(__file__).resolve().parents[2] / "shared"


def variants(model_dir: Path, onnx_dir: Path, eval_file: str | None) -> tuple[list[str], dict]:
    report = export(
        ExportArguments(model=str(model_dir), output_dir=str(onnx_dir), quantize=True, eval_file=eval_file)
    )
    return [str(model_dir), str(onnx_dir / "model.onnx"), str(onnx_dir / "model-int8.onnx")], report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ner", type=Path, nargs="*", default=[], help="fine-tuned NER model folders")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/onnx-int8"))
    parser.add_argument("--work", type=Path, default=Path("runs/onnx-int8"), help="exported models (large)")
    parser.add_argument("--repeats", type=int, default=20)
    opts = parser.parse_args()
    tokenizer = str(SHARED / "tokenizers" / "xlm-roberta")
    xs_dir = opts.work / "xs-random"
    loaded = load("xs", tokenizer, "cpu", "fp32")
    loaded.model.save_pretrained(xs_dir)
    loaded.tokenizer.save_pretrained(xs_dir)

    groups = {"xs": variants(xs_dir, opts.work / "xs-onnx", None)}
    for model in opts.ner:
        name = f"{model.parent.name}-{model.name}"
        groups[name] = variants(model, opts.work / f"{name}-onnx", str(SHARED / "data" / "ner" / "da" / "dev.iob2"))

    summary = {}
    for name, (models, exported) in groups.items():
        args = BenchArguments(
            models=models,
            output_dir=str(opts.out / name),
            batch_sizes=[1, 32],
            tokenizer=tokenizer,
            sentences_file=str(SHARED / "data" / "text" / "da.txt"),
        )
        result = bench(args, TimingSettings(repeats=opts.repeats))
        write_json(opts.out / name / "bench.json", result)
        write_json(opts.out / name / "export.json", exported)
        text = table(result)
        (opts.out / name / "bench.md").write_text(text + "\n")
        print(f"\n## {name}\n\n{text}")
        summary[name] = {"ratios": result["ratios"], "export": exported}
    write_json(opts.out / "summary.json", summary)
    print(json.dumps({k: v["ratios"] for k, v in summary.items()}, indent=1))


if __name__ == "__main__":
    main()
