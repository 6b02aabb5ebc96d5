"""Vocabulary trimming on real text: parameters, disk, unknown-token rate and exactness for da, hu and ga.

Each language's `../shared/data/text/<lang>.txt` is split by line: the first 80 % choose the vocabulary, the last 20 %
are held out. Two sources are trimmed to 99.9 % coverage of the corpus tokens:
- the shared teacher `me5-small` (BertModel, fp16, XLM-R vocabulary already pruned to 47,000 pieces);
- an `xs` student with the full 250,002-piece XLM-R vocabulary (random weights: parameter counts, disk size and the
  identity of hidden states do not depend on them), saved with the shared XLM-R `sentencepiece.bpe.model` so that the
  SentencePiece file is trimmed too. It is trimmed twice: keeping all 15,397 single-character pieces (`chars=all`)
  and keeping only the corpus's scripts and characters (`chars=scripts`).

    python benchmarks/vocab_trim.py --out benchmarks/results/vocab_trim --work runs/vocab-trim
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from time_hub.atomic import write_json
from time_hub.bench.models import load
from time_hub.compress.vocab import trim_vocabulary

SHARED = Path(__file__).resolve().parents[2] / "shared"


def save_xs(folder: Path) -> Path:
    tokenizer = SHARED / "tokenizers" / "xlm-roberta"
    if not (folder / "model.safetensors").is_file():
        loaded = load("xs", str(tokenizer), "cpu", "fp32")
        loaded.model.save_pretrained(folder)
        loaded.tokenizer.save_pretrained(folder)
    shutil.copyfile(tokenizer / "sentencepiece.bpe.model", folder / "sentencepiece.bpe.model")
    return folder


def row(name: str, lang: str, r: dict) -> str:
    p, c, w = r["parameters"], r["check"], r["disk_bytes"]["weights"]
    share = p["before"]["embeddings"] / p["before"]["total"]
    cells = [
        name,
        lang,
        f"{r['vocab_size']['before']:,} → {r['vocab_size']['after']:,}",
        f"{p['before']['total'] / 1e6:.2f}M → {p['after']['total'] / 1e6:.2f}M",
        f"{share:.0%} → {p['after']['embeddings'] / p['after']['total']:.0%}",
        f"{r['coverage']:.4f}",
        f"{c['unk_rate']['before']:.5f} → {c['unk_rate']['after']:.5f}",
        f"{c['tokens']['after'] / c['tokens']['before']:.3f}",
        f"{c['identical_share']:.2f}",
        f"{c['hidden_max_abs_diff']:.1e} ({c['hidden_sentences']})",
        f"{w['before'] / 1e6:.1f} → {w['after'] / 1e6:.1f}",
    ]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/vocab_trim"))
    parser.add_argument("--work", type=Path, default=Path("runs/vocab-trim"), help="trimmed model folders")
    parser.add_argument("--langs", nargs="+", default=["da", "hu", "ga"])
    parser.add_argument("--coverage", type=float, default=0.999)
    opts = parser.parse_args()
    sources = [
        ("me5-small", SHARED / "teachers" / "me5-small", "all"),
        ("xs", save_xs(opts.work / "xs-xlmr"), "all"),
        ("xs", opts.work / "xs-xlmr", "scripts"),
    ]
    header = [
        "| model | lang | vocabulary | parameters | embedding share | corpus coverage | held-out unk rate "
        "| held-out tokens after/before | identical sentences | max abs hidden diff (sentences) | weights MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = []
    for name, source, chars in sources:
        for lang in opts.langs:
            path = SHARED / "data" / "text" / f"{lang}.txt"
            lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            cut = int(0.8 * len(lines))
            label = f"{name}-{chars}-{lang}"
            corpus = [f"{path} lines 1-{cut}"]
            report = trim_vocabulary(
                source, lines[:cut], opts.work / label, coverage=opts.coverage, heldout=lines[cut:], chars=chars,
                corpus=corpus,
            )  # fmt: skip
            report["heldout_files"] = [f"{path} lines {cut + 1}-{len(lines)}"]
            write_json(opts.out / f"{label}.json", report)
            rows.append(row(f"{name} (chars={chars})", lang, report))
            print(rows[-1], flush=True)
    table = "\n".join([*header, *rows]) + "\n"
    (opts.out / "table.md").write_text(table, encoding="utf-8")
    print(table)


if __name__ == "__main__":
    main()
