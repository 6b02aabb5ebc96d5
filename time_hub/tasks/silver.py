"""Silver data: a fine-tuned teacher's analysis of running text, extra training data for a student.

Task-level knowledge distillation through text (hard labels): the teacher's task model annotates monolingual text
and a student is fine-tuned on that analysis together with the gold sentences (`time-hub finetune --task ud|ner
--silver_teacher T --silver_text F`). UD: the teacher's UD model reads the text with its raw-text segmenter
(`silver_sentences`). NER: the teacher's tagger tags the words of each line (`ner_silver_sentences`; words split
off by `WORD`, punctuation apart). Lines of the text that hold a sentence of the gold data (train or dev, compared
without whitespace: ../shared's text files include the UD dev sentences, which are also DaNE's) are left out and
counted, so that dev scores stay honest.

The analysis is written to a file (CoNLL-U, IOB2) with a JSON sidecar naming its inputs (teacher and its weights'
sizes and times, text files with their sizes, a digest of the gold sentences, the cap); a later call with the same
inputs reads the file instead of annotating again, so the students of one language (m, s, xs) share one annotation.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from time_hub.atomic import write_json, write_text
from time_hub.tasks.conllu import Sentence, format_conllu, read_conllu
from time_hub.text_file import read_text

logger = logging.getLogger(__name__)
MIN_CONTAINED = 20  # a gold sentence this long or longer (without whitespace) is also searched inside text lines
CHUNK_LINES = 256  # lines annotated per call (bounded memory, a progress line per chunk)
WORD = re.compile(r"\w+(?:[-'’.]\w+)*|[^\w\s]")  # NER silver: words, with inner hyphens/apostrophes/dots
MATCH = "whitespace-free"  # how text lines are compared with gold sentences (part of the cache's inputs)


def _squeezed(text: str) -> str:
    return "".join(text.split())


def text_lines(text_files: Sequence[str], gold: Sequence[str], max_bytes: int | None = None) -> tuple[list, int]:
    """The non-empty lines of `text_files` that hold no gold sentence (equal to one, or containing one of at least
    `MIN_CONTAINED` characters; whitespace ignored, so a tokenized sentence matches its raw line), up to
    `max_bytes`; and how many lines were left out for holding one."""
    texts = [_squeezed(t) for t in gold if t and t.strip()]
    exact, long = set(texts), [t for t in texts if len(t) >= MIN_CONTAINED]
    kept, dropped, size = [], 0, 0
    for path in text_files:
        for line in read_text(path).splitlines():
            line = line.strip()
            if not line:
                continue
            squeezed = _squeezed(line)
            if squeezed in exact or any(t in squeezed for t in long):
                dropped += 1
                continue
            if max_bytes is not None and size >= max_bytes:
                return kept, dropped
            kept.append(line)
            size += len(line.encode("utf-8")) + 1
    return kept, dropped


def _inputs(teacher: str, text_files: Sequence[str], gold: Sequence[str], max_bytes: int | None) -> dict:
    digest = hashlib.sha256("\n".join(gold).encode("utf-8")).hexdigest()[:16]
    files = [{"path": str(p), "bytes": Path(p).stat().st_size} for p in text_files]
    weights = sorted(Path(teacher).glob("*.safetensors")) if Path(teacher).is_dir() else []  # a re-trained teacher
    state = {w.name: [w.stat().st_size, w.stat().st_mtime_ns] for w in weights}
    return {"teacher": str(teacher), "teacher_weights": state, "text_files": files, "gold_sentences": digest,
            "max_bytes": max_bytes, "match": MATCH}  # fmt: skip


def _annotated(
    teacher: str,
    text_files: Sequence[str],
    gold: Sequence[str],
    output: Path,
    max_bytes: int | None,
    read: Callable[[Path], list],
    annotate: Callable[[list[str], int], list],
    format_: Callable[[list], str],
) -> list:
    """The cache around one annotation: `read(output)` when it was made from the same inputs, else the selected
    lines annotated `CHUNK_LINES` at a time (`annotate(lines, first_line_number)`), written with `format_`."""
    output = Path(output)
    sidecar, inputs = output.with_suffix(".json"), _inputs(teacher, text_files, gold, max_bytes)
    made = json.loads(sidecar.read_text()) if output.is_file() and sidecar.is_file() else {}
    if made.get("inputs") == inputs:
        sentences = read(output) if made["sentences"] else []
        logger.info("silver: %d sentences from %s (same teacher and text)", len(sentences), output)
        return sentences
    lines, dropped = text_lines(text_files, gold, max_bytes)
    if not lines:
        logger.warning("silver: %s: no line of text left (%d hold a gold sentence): gold data only",
                       ", ".join(map(str, text_files)), dropped)  # fmt: skip
    else:
        logger.info("silver: %d text lines (%d left out: they hold a gold sentence), annotated by %s",
                    len(lines), dropped, teacher)  # fmt: skip
    sentences, start = [], time.perf_counter()
    for i in range(0, len(lines), CHUNK_LINES):
        sentences += annotate(lines[i : i + CHUNK_LINES], i + 1)
        done = min(i + CHUNK_LINES, len(lines))
        logger.info("silver: %d/%d lines, %d sentences, %.0f s", done, len(lines), len(sentences),
                    time.perf_counter() - start)  # fmt: skip
    output.parent.mkdir(parents=True, exist_ok=True)
    write_text(output, format_(sentences))
    write_json(sidecar, {"inputs": inputs, "lines": len(lines), "left_out_lines": dropped,
                         "sentences": len(sentences)})  # fmt: skip
    return sentences


def mixed(gold: list, extra: list, gold_repeat: int, teacher: str, output: str | Path) -> tuple[list, dict]:
    """The training sentences (gold x `gold_repeat`, then the silver ones) and the summary results.json keeps."""
    summary = {"teacher": str(teacher), "file": str(output), "sentences": len(extra), "gold_repeat": gold_repeat}
    return gold * gold_repeat + extra, summary


def teacher_pipeline(teacher: str, segmenter: str | Path | None = None):
    """The teacher's raw-text pipeline: its own segmenter when it has one, else `segmenter` (a segmenter folder,
    e.g. the student's, trained on the same gold sentences)."""
    from transformers import AutoTokenizer

    from time_hub.annotate.pipeline import Pipeline, local_folder
    from time_hub.tasks.segment import FOLDER, Segmenter
    from time_hub.tasks.ud_model import UDModel

    folder = local_folder(teacher)
    if segmenter is None or (folder / FOLDER / "config.json").is_file():
        return Pipeline.from_pretrained(teacher)  # or one clear error: no segmenter
    model = UDModel.from_pretrained(folder).eval()
    return Pipeline(Segmenter.from_pretrained(segmenter), model, AutoTokenizer.from_pretrained(folder))


def silver_sentences(
    teacher: str,
    text_files: Sequence[str],
    gold: Sequence[Sentence],
    output: str | Path,
    max_bytes: int | None = None,
    segmenter: str | Path | None = None,
) -> list[Sentence]:
    """The UD teacher's analysis of the text (minus the gold sentences), from `output` (CoNLL-U) when it was made
    from the same inputs, else annotated into it (`teacher_pipeline(teacher, segmenter)`)."""
    pipeline = None

    def annotate(lines: list[str], first: int) -> list[Sentence]:
        nonlocal pipeline
        pipeline = pipeline or teacher_pipeline(teacher, segmenter)
        ids = [f"silver-{first + j}" for j in range(len(lines))]
        return [s for document in pipeline(lines, ids) for s in document]

    texts = [s.text or "" for s in gold]
    return _annotated(teacher, text_files, texts, Path(output), max_bytes, read_conllu, annotate, format_conllu)


def ner_silver_sentences(
    teacher: str, text_files: Sequence[str], gold: Sequence, output: str | Path, max_bytes: int | None = None
) -> list:
    """The NER teacher's tags of the text's words (lines minus the gold sentences, split by `WORD`), from `output`
    (IOB2) when it was made from the same inputs, else tagged into it."""
    from transformers import AutoTokenizer

    from time_hub.tasks import ner

    tagger = None

    def annotate(lines: list[str], first: int) -> list:
        nonlocal tagger
        if tagger is None:
            model = ner.load_tagger(teacher).eval()
            tagger = model, AutoTokenizer.from_pretrained(teacher)
        model, tokenizer = tagger
        words = [WORD.findall(line) for line in lines]
        tags, _ = ner.tag_words(ner.torch_logits(model), tokenizer, model.config, words)
        return [ner.NerSentence(w, t, f"silver-{first + j}") for j, (w, t) in enumerate(zip(words, tags)) if w]

    texts = ["".join(s.tokens) for s in gold]
    return _annotated(teacher, text_files, texts, Path(output), max_bytes, ner.read_iob2, annotate, ner.format_iob2)
