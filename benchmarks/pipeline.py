"""Raw text -> CoNLL-U, time-hub against what users would pick instead, trained on the same data, scored the same way.

Systems (all trained on the train part of the protocol's UD split, selected on its held-out part, which is also the
one scored, as for every dev number in this project; `benchmarks/protocol.py` makes the split):
- time-hub: the teacher and the CPU operating points, each fine-tuned with the protocol's UD recipe (seed 42) plus
  the learned segmenter (`--segmenter_steps`), run through `time_hub.annotate.pipeline.Pipeline`; `NAME+int8` is the
  same pipeline with its encoders exported to ONNX and run with int8 weights on onnxruntime;
- spaCy (`tok2vec, tagger, morphologizer, trainable_lemmatizer, parser`, `spacy init config --optimize efficiency`,
  CPU, no pretrained vectors), trained with `spacy train`'s defaults and `--max_steps`;
- UDPipe 1 (`ufal.udpipe`, method morphodita_parsito, default options: tokenizer, tagger, lemmatizer, parser).

Scores: the CoNLL 2018 raw-text metrics (`time_hub.tasks.ud_raw_metrics`) on the held-out sentences given as one
running text (their `# text` joined by spaces: ../shared keeps no paragraph breaks), and for time-hub also the
gold-tokenization scores. Speed: sentences/s (each system's own sentence count) and lines/s on the same
`--speed_lines` lines of ../shared/data/text/<lang>.txt, one system after the other in one process, `--threads`
torch/BLAS threads. `--rerun` re-scores and re-times every system from its saved model (nothing is trained again;
the first run's `setup_seconds`, its training time, is kept), so that all speeds come from one run. Per-system JSON
is kept and re-used, so an interrupted run continues:

    python benchmarks/pipeline.py --lang da --out benchmarks/results/pipeline/da
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from protocol import PROTOCOL, SHARED, prepare_data, training_args  # noqa: E402

from time_hub.tasks import segment, ud  # noqa: E402
from time_hub.tasks.conllu import Sentence, parse_conllu, read_conllu  # noqa: E402
from time_hub.tasks.ud_raw_metrics import raw_text_scores  # noqa: E402

ENCODERS = {
    "teacher": SHARED / "teachers" / "me5-small",
    "cpu-m": Path("runs/first6-da"),
    "cpu-s": Path("runs/first3-da"),
    "cpu-xs": Path("runs/first2-da"),
}


def running_text(sentences: list[Sentence]) -> str:
    return " ".join(segment.sentence_text(s) for s in sentences)


def timed(annotate, texts: list[str]) -> tuple[float, int]:
    """(seconds, sentences) to annotate `texts`."""
    start = time.perf_counter()
    sentences = annotate(texts)
    return time.perf_counter() - start, sum(len(doc) for doc in sentences)


# --- time-hub ---------------------------------------------------------------------------------------------------


def time_hub_system(
    name: str, encoder: Path, files: tuple[Path, Path], work: Path, segmenter_steps: int, onnx: str | None = None
):
    """A fine-tuned (once) UD model + segmenter as a pipeline; with `onnx`, its encoders exported (once) and run on
    onnxruntime."""
    from time_hub.annotate.pipeline import ONNX_FILES, Pipeline
    from time_hub.bench.export import ExportArguments, export

    model_dir = work / name / "ud"
    if not (model_dir / "results.json").exists():
        run_dir = work / name / "ud-run"
        args = training_args(run_dir, PROTOCOL["ud"], "LAS", 42)
        ud.finetune(str(encoder), str(files[0]), str(files[1]), str(model_dir), args, PROTOCOL["ud"].max_length,
                    early_stopping_patience=PROTOCOL["ud"].patience, segmenter_steps=segmenter_steps)  # fmt: skip
    for folder in (model_dir, model_dir / segment.FOLDER) if onnx else ():
        if not (folder / "onnx" / ONNX_FILES[onnx]).exists():
            export(ExportArguments(model=str(folder), output_dir=str(folder / "onnx"), quantize=True))
    pipeline = Pipeline.from_pretrained(model_dir, onnx=onnx)
    gold_tok = json.loads((model_dir / "results.json").read_text())["metrics"]
    return (lambda texts: pipeline(texts)), {"gold_tokenization": gold_tok, "model": str(model_dir), "onnx": onnx}


# --- spaCy ------------------------------------------------------------------------------------------------------


def spacy_system(lang: str, files: tuple[Path, Path], work: Path, max_steps: int):
    import spacy
    from spacy.cli.init_config import init_config
    from spacy.cli.train import train
    from spacy.tokens import DocBin
    from spacy.training.converters import conllu_to_docs

    out = work / "spacy"
    best = out / "model-best"
    if not best.exists():
        out.mkdir(parents=True, exist_ok=True)
        for part, path in zip(("train", "dev"), files):
            docs = conllu_to_docs(path.read_text(encoding="utf-8"), n_sents=10, no_print=True)
            DocBin(docs=list(docs)).to_disk(out / f"{part}.spacy")
        pipeline = ["tok2vec", "tagger", "morphologizer", "trainable_lemmatizer", "parser"]
        config = init_config(lang=lang, pipeline=pipeline, optimize="efficiency", gpu=False)
        config.to_disk(out / "config.cfg")
        overrides = {"paths.train": str(out / "train.spacy"), "paths.dev": str(out / "dev.spacy"),
                     "training.max_steps": max_steps}  # fmt: skip
        train(out / "config.cfg", out, use_gpu=-1, overrides=overrides)
    nlp = spacy.load(best)

    def annotate(texts: list[str]) -> list[list[Sentence]]:
        return [spacy_sentences(doc) for doc in nlp.pipe(texts, batch_size=64)]

    return annotate, {"model": str(best), "spacy": spacy.__version__, "max_steps": max_steps}


def spacy_sentences(doc) -> list[Sentence]:
    """A spaCy Doc as CoNLL-U sentences (whitespace tokens dropped; a word attached to one goes to the root)."""
    out = []
    for sent in doc.sents:
        tokens = [t for t in sent if not t.is_space]
        if not tokens:
            continue
        index = {t.i: k for k, t in enumerate(tokens, 1)}
        root = next((index[t.i] for t in tokens if t.head.i == t.i), 1)
        lines = []
        for k, t in enumerate(tokens, 1):
            head = 0 if k == root else index.get(t.head.i, root)
            head = root if head == k else head
            deprel = "root" if head == 0 else (t.dep_.lower() if t.dep_ and t.dep_ != "ROOT" else "dep")
            misc = "_" if t.whitespace_ or k == len(tokens) else "SpaceAfter=No"
            lines.append(f"{k}\t{t.text}\t{t.lemma_ or '_'}\t{t.pos_ or 'X'}\t{t.tag_ or '_'}\t{str(t.morph) or '_'}"
                         f"\t{head}\t{deprel}\t_\t{misc}")  # fmt: skip
        out.extend(parse_conllu("\n".join(lines) + "\n\n", "spacy"))
    return out


# --- UDPipe 1 ---------------------------------------------------------------------------------------------------


def udpipe_system(files: tuple[Path, Path], work: Path):
    import ufal.udpipe as udpipe

    path = work / "udpipe" / "model.udpipe"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        sentences = []
        for file in files:
            reader, error = udpipe.InputFormat.newConlluInputFormat(), udpipe.ProcessingError()
            reader.setText(file.read_text(encoding="utf-8"))
            parsed = udpipe.Sentences()
            sentence = udpipe.Sentence()
            while reader.nextSentence(sentence, error):
                parsed.push_back(sentence)
                sentence = udpipe.Sentence()
            sentences.append(parsed)
        error = udpipe.ProcessingError()
        model = udpipe.Trainer.train("morphodita_parsito", sentences[0], sentences[1], "", "", "", error)
        if error.occurred():
            raise RuntimeError(f"UDPipe training failed: {error.message}")
        path.write_bytes(model)
    model = udpipe.Model.load(str(path))
    pipe = udpipe.Pipeline(model, "tokenize", udpipe.Pipeline.DEFAULT, udpipe.Pipeline.DEFAULT, "conllu")

    def annotate(texts: list[str]) -> list[list[Sentence]]:
        assert model is not None  # the pipeline points into the model: it must live as long as the closure
        docs = []
        for text in texts:
            error = udpipe.ProcessingError()
            docs.append(parse_conllu(pipe.process(text, error), "udpipe"))
        return docs

    return annotate, {"model": str(path), "udpipe": udpipe.Version.current().__str__()}


# --- the comparison ---------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lang", default="da")
    parser.add_argument("--systems", nargs="+", default=[*ENCODERS, "spacy", "udpipe"])
    parser.add_argument("--out", type=Path, required=True, help="results (small; commit them)")
    parser.add_argument("--work", type=Path, default=None, help="models (default runs/pipeline/<lang>)")
    parser.add_argument("--segmenter_steps", type=int, default=600)
    parser.add_argument("--spacy_max_steps", type=int, default=4000)
    parser.add_argument("--speed_lines", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rerun", action="store_true", help="re-score and re-time saved models in this one run")
    opts = parser.parse_args()
    torch.set_num_threads(opts.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(opts.threads))
    work = opts.work or Path("runs/pipeline") / opts.lang
    files = prepare_data(opts.lang, work)["ud"]
    gold = read_conllu(files[1])
    raw = running_text(gold)
    lines = (SHARED / "data" / "text" / f"{opts.lang}.txt").read_text(encoding="utf-8").splitlines()
    speed_texts = [line for line in lines if line.strip()][: opts.speed_lines]
    opts.out.mkdir(parents=True, exist_ok=True)
    for name in opts.systems:
        saved = opts.out / f"{name}.json"
        if saved.exists() and not opts.rerun:
            continue
        start = time.perf_counter()
        base, _, variant = name.partition("+")  # e.g. cpu-s+int8: the cpu-s pipeline on onnxruntime, int8 weights
        if base in ENCODERS:
            annotate, info = time_hub_system(base, ENCODERS[base], files, work, opts.segmenter_steps, variant or None)
        elif name == "spacy":
            annotate, info = spacy_system(opts.lang, files, work, opts.spacy_max_steps)
        elif name == "udpipe":
            annotate, info = udpipe_system(files, work)
        else:
            raise SystemExit(f"unknown system {name!r}: choose from {[*ENCODERS, 'spacy', 'udpipe']} (+int8)")
        setup_seconds = time.perf_counter() - start
        if saved.exists():  # --rerun: keep the training time of the run that trained it
            setup_seconds = json.loads(saved.read_text())["setup_seconds"]
        system = [s for doc in annotate([raw]) for s in doc]
        scores = raw_text_scores(gold, system)
        annotate(speed_texts[:50])  # warm-up
        seconds, n_sentences = timed(annotate, speed_texts)
        result = {"system": name, "raw_text": scores, "sentences_per_second": n_sentences / seconds,
                  "texts_per_second": len(speed_texts) / seconds,
                  "speed": {"texts": len(speed_texts), "sentences": n_sentences, "seconds": seconds,
                            "threads": opts.threads},
                  "setup_seconds": setup_seconds, **info}  # fmt: skip
        saved.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        speed = f"{n_sentences / seconds:.1f} sentences/s"
        print(name, {k: round(v, 2) for k, v in scores.items()}, speed, flush=True)
    write_table(opts.out, opts.systems)


def write_table(out: Path, systems: list[str]) -> None:
    rows = [json.loads((out / f"{name}.json").read_text()) for name in systems if (out / f"{name}.json").exists()]
    metrics = ("Tokens", "Sentences", "Words", "UPOS", "Lemmas", "UAS", "LAS")
    lines = ["| system | " + " | ".join(metrics) + " | gold-tok. LAS | sentences/s | lines/s |",
             "|---|" + "---:|" * (len(metrics) + 3)]  # fmt: skip
    for row in rows:
        gold_las = row.get("gold_tokenization", {}).get("LAS")
        cells = [f"{row['raw_text'][m]:.2f}" for m in metrics]
        cells += [f"{gold_las:.2f}" if gold_las is not None else "-", f"{row['sentences_per_second']:.1f}",
                  f"{row['texts_per_second']:.1f}"]  # fmt: skip
        lines.append(f"| {row['system']} | " + " | ".join(cells) + " |")
    (out / "table.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for row in rows:
        ax.scatter(row["sentences_per_second"], row["raw_text"]["LAS"])
        ax.annotate(row["system"], (row["sentences_per_second"], row["raw_text"]["LAS"]), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("sentences/s (2 CPU cores, log)")
    ax.set_ylabel("LAS from raw text")
    ax.set_title(f"{out.name}: raw text -> CoNLL-U")
    fig.tight_layout()
    fig.savefig(out / "pareto.png", dpi=120)


if __name__ == "__main__":
    main()
