"""`time-hub annotate`: raw text files (or stdin) -> CoNLL-U or JSONL, streamed, in parallel, resumable.

    time-hub annotate news.txt --model runs/da/tasks/ud --ner runs/da/tasks/ner --output news.conllu --workers 2

* Input: UTF-8 text, one document per line (`--documents line`) or blank-line separated (`--documents paragraph`).
  Files are checked before anything is written: an empty file, a binary file (NUL byte) or a line that is not UTF-8
  is one error naming the file and line (exit 2).
* Streaming: documents are read lazily and handed out in chunks of about `--chunk_chars` characters, at most two per
  worker in flight, so a 1 GB file never sits in memory; output is written in input order.
* `--workers N`: N processes, each with its own copy of the models and cores // N torch threads.
* Resume: with `--output`, progress is recorded after every chunk in `<output>.progress.json` (documents done, bytes
  written); run the same command again after a kill and it continues after the last complete chunk. The progress
  file is removed when the run completes.
* A log line every 10 seconds: documents, sentences, sentences/s.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from time_hub.arguments import parse_command
from time_hub.atomic import write_json
from time_hub.progress import duration
from time_hub.tasks.conllu import Sentence

logger = logging.getLogger(__name__)
PROGRESS_SUFFIX = ".progress.json"
LOG_EVERY_SECONDS = 10.0


@dataclass
class AnnotateArguments:
    inputs: list[str] = field(metadata={"help": "text files ('-' reads stdin)"})
    model: str = field(metadata={"help": "UD model folder or Hub id (with its segmenter/)"})
    ner: str | None = field(default=None, metadata={"help": "NER tagger folder or Hub id (tags in MISC)"})
    output: str | None = field(default=None, metadata={"help": "output file (default: stdout; needed to resume)"})
    format: Literal["conllu", "jsonl"] = field(default="conllu", metadata={"help": "conllu or jsonl (one doc a line)"})
    documents: Literal["line", "paragraph"] = field(
        default="line", metadata={"help": "one document per line, or blank-line separated paragraphs"}
    )
    workers: int = field(default=1, metadata={"help": "processes, each with its own models"})
    batch_size: int = 32
    chunk_chars: int = field(default=20_000, metadata={"help": "text handed to a worker at a time"})
    threads: int | None = field(default=None, metadata={"help": "torch threads per worker (default cores // workers)"})
    device: str = "cpu"
    onnx: Literal["fp32", "int8"] | None = field(
        default=None, metadata={"help": "run the encoders with onnxruntime (`time-hub export` each model first)"}
    )


def check_input(path: str) -> None:
    """One error naming the file (and line) for an empty, binary or non-UTF-8 file; reads it once, line by line."""
    if path == "-":
        return
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with file.open("rb") as f:
        empty = True
        for lineno, line in enumerate(f, 1):
            empty = empty and not line.strip()
            if b"\0" in line:
                raise ValueError(f"{path}:{lineno}: binary data (a NUL byte), not text")
            try:
                line.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not UTF-8 text (byte {line[e.start]:#04x})") from None
    if empty:
        raise ValueError(f"{path}: empty file (no text to annotate)")


def read_documents(paths: list[str], mode: str) -> Iterator[tuple[str, str]]:
    """(document id `file:line`, text) in input order, lazily."""
    for path in paths:
        stream = sys.stdin.buffer if path == "-" else Path(path).open("rb")
        name = "stdin" if path == "-" else Path(path).name
        with stream:
            lines: list[str] = []
            start = 0
            for lineno, raw in enumerate(stream, 1):
                try:
                    line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8").rstrip("\r\n")
                except UnicodeDecodeError:
                    raise ValueError(f"{path}:{lineno}: not UTF-8 text") from None
                if mode == "line":
                    if line.strip():
                        yield f"{name}:{lineno}", line
                    continue
                if line.strip():
                    start = start or lineno
                    lines.append(line)
                elif lines:
                    yield f"{name}:{start}", "\n".join(lines)
                    lines, start = [], 0
            if lines:
                yield f"{name}:{start}", "\n".join(lines)


def chunks(documents: Iterator[tuple[str, str]], chunk_chars: int) -> Iterator[list[tuple[str, str]]]:
    chunk, size = [], 0
    for doc in documents:
        chunk.append(doc)
        size += len(doc[1])
        if size >= chunk_chars:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def to_jsonl(doc_id: str, sentences: list[Sentence]) -> str:
    """One JSON line per document: its sentences, each with text and words (CoNLL-U columns, NER from MISC)."""
    rows = []
    for sentence in sentences:
        words = []
        for w in sentence.words:
            misc = dict(item.split("=", 1) for item in w.misc.split("|") if "=" in item)
            words.append(
                {
                    "id": w.id,
                    "form": w.form,
                    "lemma": w.lemma,
                    "upos": w.upos,
                    "xpos": w.xpos,
                    "feats": w.feats,
                    "head": w.head,
                    "deprel": w.deprel,
                    "ner": misc.get("NER"),
                }  # fmt: skip
            )
        rows.append({"text": sentence.text, "words": words})
    return json.dumps({"id": doc_id, "sentences": rows}, ensure_ascii=False) + "\n"


_PIPELINE = None  # the worker's pipeline, loaded once per process


def _load(args: dict) -> None:
    global _PIPELINE
    import torch

    from time_hub.annotate.pipeline import Pipeline

    if args["threads"]:
        torch.set_num_threads(args["threads"])
    _PIPELINE = Pipeline.from_pretrained(args["model"], args["ner"], args["device"], args["batch_size"], args["onnx"])


def _annotate(chunk: list[tuple[str, str]], fmt: str) -> tuple[str, int, int]:
    """(output text, documents, sentences) of one chunk."""
    ids, texts = [doc_id for doc_id, _ in chunk], [text for _, text in chunk]
    documents = _PIPELINE(texts, ids)
    if fmt == "jsonl":
        text = "".join(to_jsonl(doc_id, sentences) for doc_id, sentences in zip(ids, documents))
    else:
        text = "".join(s.to_text() for sentences in documents for s in sentences)
    return text, len(chunk), sum(map(len, documents))


def annotate(args: AnnotateArguments) -> dict:
    """Run the command; returns its totals (documents, sentences, seconds)."""
    if args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    for path in args.inputs:
        check_input(path)
    from time_hub.annotate.pipeline import Pipeline, local_folder

    model = str(Pipeline.ud_folder(args.model))  # resolved once here: workers neither fail alone nor each download
    ner = str(local_folder(args.ner)) if args.ner else None
    settings = {
        k: v for k, v in asdict(args).items() if k not in ("workers", "threads", "device", "batch_size", "onnx")
    }
    progress_file = Path(args.output + PROGRESS_SUFFIX) if args.output else None
    done = {"documents": 0, "sentences": 0, "bytes": 0}
    if progress_file and progress_file.is_file():
        recorded = json.loads(progress_file.read_text(encoding="utf-8"))
        if recorded.get("settings") == settings and Path(args.output).is_file():
            done = recorded["done"]
            logger.info("resuming %s after %d documents", args.output, done["documents"])
    # workers share the cores; one process keeps the caller's torch threads unless told
    threads = args.threads or (max(1, (os.cpu_count() or 1) // args.workers) if args.workers > 1 else None)
    load_args = {"model": model, "ner": ner, "device": args.device, "batch_size": args.batch_size,
                 "threads": threads, "onnx": args.onnx}  # fmt: skip
    _load(load_args)  # here first, before any output: a missing file or bad model is one error line, not a worker's
    documents = read_documents(args.inputs, args.documents)
    for _ in range(done["documents"]):
        next(documents, None)
    if args.output:
        out = Path(args.output).open("r+b" if done["documents"] else "wb")
        out.truncate(done["bytes"])
        out.seek(done["bytes"])
    else:
        out = sys.stdout.buffer
    start = last_log = time.perf_counter()
    counted = dict(done)
    pool = ProcessPoolExecutor(args.workers, initializer=_load, initargs=(load_args,)) if args.workers > 1 else None
    try:
        pending: deque[Future] = deque()
        work = chunks(documents, args.chunk_chars)

        def finish(result: tuple[str, int, int]) -> None:
            nonlocal last_log
            text, n_docs, n_sentences = result
            out.write(text.encode("utf-8"))
            out.flush()
            counted["documents"] += n_docs
            counted["sentences"] += n_sentences
            counted["bytes"] = out.tell() if args.output else 0
            if progress_file:
                write_json(progress_file, {"settings": settings, "done": counted})
            now = time.perf_counter()
            if now - last_log >= LOG_EVERY_SECONDS:
                last_log = now
                new = counted["sentences"] - done["sentences"]
                logger.info("%d documents, %d sentences, %.1f sentences/s, %s elapsed", counted["documents"],
                            counted["sentences"], new / (now - start), duration(now - start))  # fmt: skip

        for chunk in work:
            if pool is None:
                finish(_annotate(chunk, args.format))
                continue
            pending.append(pool.submit(_annotate, chunk, args.format))
            while len(pending) >= 2 * args.workers:
                finish(pending.popleft().result())
        while pending:
            finish(pending.popleft().result())
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        if args.output:
            out.close()
    if progress_file:
        progress_file.unlink(missing_ok=True)
    seconds = time.perf_counter() - start
    new = counted["sentences"] - done["sentences"]
    return {**counted, "seconds": seconds, "sentences_per_second": new / seconds if seconds else 0.0}


def main(argv: list[str]) -> int:
    description = "Annotate raw text: sentences, tokens, tags, lemmas, trees (and entities) -> CoNLL-U or JSONL."
    parsed = parse_command("time-hub annotate", description, (AnnotateArguments,), argv, "inputs", many=True)
    if parsed is None:
        return 0
    ((args,), _) = parsed
    totals = annotate(args)
    print(
        f"annotated {totals['documents']} documents, {totals['sentences']} sentences in "
        f"{duration(totals['seconds'])} ({totals['sentences_per_second']:.1f} sentences/s)"
        + (f" -> {args.output}" if args.output else ""),
        file=sys.stderr,
    )
    return 0
