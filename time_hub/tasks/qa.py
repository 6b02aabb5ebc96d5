"""Extractive question answering on SQuAD v1.1-format data: sliding windows, a stock QA head, official EM/F1.

- Each (question, context) pair is cut into windows of `max_length` subwords overlapping by `doc_stride`
  (`truncation="only_second"`, so the question is repeated in every window). A training window that does not hold
  the whole first gold answer points start and end at the CLS token (index 0).
- Decoding looks at the `n_best` start and end logits of every window of a question and keeps the highest-scoring
  span (start logit + end logit) that lies in the context and is at most `max_answer_length` subwords long.
- A question too long to leave more than `doc_stride` subwords of context per window gets no window: it is counted in
  the log, left out of training, and scores 0 in evaluation (it stays in the denominator).
- XQuAD has no train split: `split_squad_by_article` makes one from its first articles for tests and demos.
- transformers 5 removed `pipeline("question-answering")`; `answer` is the stand-in for a saved model folder.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from transformers import (
    AutoModelForQuestionAnswering,
    AutoTokenizer,
    DataCollatorWithPadding,
    EvalPrediction,
    PreTrainedTokenizerBase,
    TrainingArguments,
    set_seed,
)

from time_hub.encoder import load_with_new_head
from time_hub.tasks import committee
from time_hub.tasks.results import TaskResults
from time_hub.tasks.squad_metric import squad_scores
from time_hub.tasks.training import (
    HUB_SPLITS,
    TaskTrainer,
    dev_selection_args,
    hub_dataset_id,
    predict,
    train_and_save,
)
from time_hub.text_file import excerpt, read_text

logger = logging.getLogger(__name__)

_CHUNK = 1000  # questions tokenized per call: bounds the memory of offsets on SQuAD-size data


@dataclass
class SquadExample:
    id: str
    title: str
    context: str
    question: str
    answers: list[str]
    answer_starts: list[int]


@dataclass
class QaFeatures:
    """Model inputs for every window, and what decoding needs to map a window's logits back to context text."""

    inputs: dict[str, list] = field(default_factory=dict)  # input_ids, attention_mask, start/end_positions
    example_index: list[int] = field(default_factory=list)  # window -> index of its question
    offsets: list[list[tuple[int, int] | None]] = field(default_factory=list)  # character spans, None off-context


def _get(obj, key: str, kind: type, path: Path, where: str):
    """`obj[key]` checked to be a `kind`; errors name the file and the JSON key path."""
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: {where or 'top level'} should be a JSON object, got {type(obj).__name__}")
    name = f"{where}.{key}" if where else key
    if key not in obj:
        raise ValueError(f"{path}: missing key {name}")
    value = obj[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"{path}: {name} should be {kind.__name__}, got {type(value).__name__}")
    return value


def read_squad(path: str | Path) -> list[SquadExample]:
    """Read a SQuAD v1.1 JSON file (`data[].paragraphs[].qas[]`). Answers must sit at their `answer_start`.

    Questions without answers (SQuAD 2.0 unanswerable ones) have no v1.1 score: they are skipped and counted.
    """
    path = Path(path)
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    examples: list[SquadExample] = []
    seen: dict[str, str] = {}
    unanswerable = 0
    for a, article in enumerate(_get(data, "data", list, path, "")):
        key = f"data[{a}]"
        title = article.get("title", "") if isinstance(article, dict) else ""
        for p, paragraph in enumerate(_get(article, "paragraphs", list, path, key)):
            pkey = f"{key}.paragraphs[{p}]"
            context = _get(paragraph, "context", str, path, pkey)
            for q, qa in enumerate(_get(paragraph, "qas", list, path, pkey)):
                qkey = f"{pkey}.qas[{q}]"
                qid = _get(qa, "id", str, path, qkey)
                if qid in seen:
                    raise ValueError(f"{path}: {qkey}.id {excerpt(qid)} repeats the id of {seen[qid]}")
                seen[qid] = qkey
                question = _get(qa, "question", str, path, qkey)
                answers = _get(qa, "answers", list, path, qkey)
                if not answers or qa.get("is_impossible"):
                    unanswerable += 1
                    continue
                texts, starts = [], []
                for n, answer in enumerate(answers):
                    akey = f"{qkey}.answers[{n}]"
                    text = _get(answer, "text", str, path, akey)
                    start = _get(answer, "answer_start", int, path, akey)
                    if start < 0 or context[start : start + len(text)] != text:
                        raise ValueError(
                            f"{path}: {akey}: text {excerpt(text)} is not at answer_start {start} of the context"
                        )
                    texts.append(text)
                    starts.append(start)
                examples.append(SquadExample(qid, title, context, question, texts, starts))
    if unanswerable:
        logger.warning("%s: skipped %d questions without answers (SQuAD v1.1 scores none)", path, unanswerable)
    if not examples:
        raise ValueError(f"{path}: no answerable questions found")
    logger.info("%s: %d questions", path, len(examples))
    return examples


def load_squad(source: str | Path, split: str = "train") -> list[SquadExample]:
    """A local SQuAD v1.1 JSON file, or a Hub dataset with the SQuAD columns (e.g. `rajpurkar/squad`)."""
    if Path(source).exists():
        return read_squad(source)
    source = hub_dataset_id(source, "rajpurkar/squad")
    # Untested offline (tests never reach the Hub): `rajpurkar/squad` loads as parquet data files with the columns
    # id, title, context, question, answers{text, answer_start}.
    from datasets import load_dataset

    data = load_dataset(source, split=HUB_SPLITS.get(split, split))
    return [
        SquadExample(
            r["id"], r["title"], r["context"], r["question"], r["answers"]["text"], r["answers"]["answer_start"]
        )
        for r in data
        if r["answers"]["text"]
    ]


def split_squad_by_article(path: str | Path, train_articles: int, output_dir: str | Path) -> tuple[Path, Path]:
    """Write `train.json` (the first `train_articles` articles of `path`) and `dev.json` (the rest) to `output_dir`.

    Splitting by article keeps every context on one side, so dev questions never share a paragraph with training.
    """
    read_squad(path)  # validate before splitting
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    articles = data["data"]
    if not 0 < train_articles < len(articles):
        raise ValueError(f"{path}: train_articles must be in 1..{len(articles) - 1}, got {train_articles}")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = output_dir / "train.json", output_dir / "dev.json"
    for out, part in zip(paths, (articles[:train_articles], articles[train_articles:])):
        out.write_text(json.dumps({"version": data.get("version", "1.1"), "data": part}, ensure_ascii=False))
    return paths


def _answer_positions(
    offsets: list[tuple[int, int] | None], start_char: int, end_char: int, cls: int
) -> tuple[int, int]:
    """Subword start/end of the character span [start_char, end_char) in a window, or (cls, cls) if not inside."""
    context = [i for i, o in enumerate(offsets) if o is not None]
    if not context or offsets[context[0]][0] > start_char or offsets[context[-1]][1] < end_char:
        return cls, cls
    start = next(i for i in reversed(context) if offsets[i][0] <= start_char)
    end = next(i for i in context if offsets[i][1] >= end_char)
    return start, end


def make_features(
    examples: list[SquadExample], tokenizer: PreTrainedTokenizerBase, max_length: int, doc_stride: int
) -> QaFeatures:
    """Sliding windows over every context, with start/end positions of the first gold answer (CLS when absent)."""
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    if not 0 <= doc_stride < max_length - specials - 1:
        raise ValueError(f"doc_stride must be in 0..{max_length - specials - 2} for max_length {max_length}")
    questions = [e.question.lstrip() for e in examples]  # leading spaces would only waste window room
    lengths = [len(ids) for ids in tokenizer(questions, add_special_tokens=False)["input_ids"]]
    # The fast tokenizer panics unless the context room per window exceeds the stride.
    keep = [i for i, n in enumerate(lengths) if n + specials + doc_stride < max_length]
    if len(keep) < len(examples):
        logger.warning(
            "%d questions are too long for max_length %d with doc_stride %d: no window (scored 0)",
            len(examples) - len(keep),
            max_length,
            doc_stride,
        )
    features = QaFeatures({"input_ids": [], "attention_mask": [], "start_positions": [], "end_positions": []})
    for c in range(0, len(keep), _CHUNK):
        chunk = keep[c : c + _CHUNK]
        enc = tokenizer(
            [questions[i] for i in chunk],
            [examples[i].context for i in chunk],
            truncation="only_second",
            max_length=max_length,
            stride=doc_stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
        )
        for w, ids in enumerate(enc["input_ids"]):
            index = chunk[enc["overflow_to_sample_mapping"][w]]
            example = examples[index]
            offsets = [tuple(o) if s == 1 else None for o, s in zip(enc["offset_mapping"][w], enc.sequence_ids(w))]
            cls = ids.index(tokenizer.cls_token_id) if tokenizer.cls_token_id in ids else 0
            start_char = example.answer_starts[0]
            start, end = _answer_positions(offsets, start_char, start_char + len(example.answers[0]), cls)
            for name, value in zip(features.inputs, (ids, enc["attention_mask"][w], start, end)):
                features.inputs[name].append(value)
            features.example_index.append(index)
            features.offsets.append(offsets)
    return features


@dataclass(frozen=True)
class Span:
    """An answer candidate: its score (start + end logit), window, token range and character range."""

    score: float
    window: int
    first_token: int
    last_token: int
    start: int
    end: int


def decode_answers(
    examples: list[SquadExample],
    features: QaFeatures,
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    n_best: int = 20,
    max_answer_length: int = 30,
) -> dict[str, str]:
    """Best answer text per question id over all its windows; "" for a question without any valid span.

    Logit rows may be padded past a window's length (batches are padded): only the first len(offsets) count.
    """
    spans = decode_spans(features, start_logits, end_logits, n_best, max_answer_length)
    return {
        example.id: example.context[spans[i].start : spans[i].end] if i in spans else ""
        for i, example in enumerate(examples)
    }


def decode_spans(
    features: QaFeatures,
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    n_best: int = 20,
    max_answer_length: int = 30,
) -> dict[int, Span]:
    """Per example index, the best span over all its windows (by start + end logit): the `n_best` start and end
    candidates of each window, end not before start, at most `max_answer_length` tokens."""
    best: dict[int, Span] = {}
    for w, (index, offsets) in enumerate(zip(features.example_index, features.offsets)):
        starts_logit = start_logits[w][: len(offsets)]
        ends_logit = end_logits[w][: len(offsets)]
        top_starts = np.argsort(starts_logit)[::-1][:n_best]
        top_ends = np.argsort(ends_logit)[::-1][:n_best]
        for s in top_starts:
            if offsets[s] is None:
                continue
            for e in top_ends:
                if offsets[e] is None or e < s or e - s + 1 > max_answer_length:
                    continue
                score = float(starts_logit[s] + ends_logit[e])
                if index not in best or score > best[index].score:
                    best[index] = Span(score, w, int(s), int(e), offsets[s][0], offsets[e][1])
    return best


def _window_logits(model, tokenizer, features: QaFeatures, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and end logits of every window (none when every question was too long to get one)."""
    if not features.offsets:
        return np.zeros((0, 0)), np.zeros((0, 0))
    dataset = Dataset.from_dict(features.inputs)
    return predict(model, tokenizer, dataset, DataCollatorWithPadding(tokenizer), batch_size)


def _references(examples: list[SquadExample]) -> dict[str, list[str]]:
    return {e.id: e.answers for e in examples}


def finetune(
    model_name_or_path: str,
    train_file: str,
    dev_file: str | None,
    output_dir: str,
    training_args: TrainingArguments,
    max_length: int = 384,
    doc_stride: int = 128,
    max_answer_length: int = 30,
    n_best: int = 20,
    *,
    early_stopping_patience: int | None = None,
    head_learning_rate: float | None = 1e-2,
) -> TaskResults:
    """Fine-tune a QA head on `train_file`, keep the best evaluation by dev F1, save the model (a stock
    `AutoModelForQuestionAnswering` folder) and `results.json` in `output_dir`.

    Returns `evaluate(output_dir, dev_file, ...)` with the same window settings (split "dev") and the training
    summary in `extra["training"]`; without a dev file the model is scored on the training file (split "train").
    `head_learning_rate`: peak learning rate of the new head (None: everything at `training_args.learning_rate`);
    see `time_hub.tasks.training.TaskTrainer` (1e-2 is measured on ner, not tuned for qa).
    """
    set_seed(training_args.seed)  # before the head is initialised
    train = load_squad(train_file, "train")
    dev = load_squad(dev_file, "dev") if dev_file else []
    tokenizer = AutoTokenizer.from_pretrained(model_name_or_path)
    model = load_with_new_head(AutoModelForQuestionAnswering, model_name_or_path)
    train_features = make_features(train, tokenizer, max_length, doc_stride)
    kwargs = {}
    if dev:
        dev_features = make_features(dev, tokenizer, max_length, doc_stride)

        def compute_metrics(prediction: EvalPrediction) -> dict[str, float]:
            start_logits, end_logits = prediction.predictions
            answers = decode_answers(dev, dev_features, start_logits, end_logits, n_best, max_answer_length)
            return squad_scores(answers, _references(dev))

        kwargs = {"eval_dataset": Dataset.from_dict(dev_features.inputs), "compute_metrics": compute_metrics}
    args = dev_selection_args(training_args, output_dir, "f1", bool(dev))
    trainer = TaskTrainer(
        model=model,
        args=args,
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        train_dataset=Dataset.from_dict(train_features.inputs),
        head_learning_rate=head_learning_rate,
        **kwargs,
    )
    training = {"train_file": str(train_file), "questions": len(train), "windows": len(train_features.offsets)}
    training |= train_and_save(trainer, output_dir, early_stopping_patience)
    split = "dev" if dev_file else "train"
    results = evaluate(
        output_dir,
        dev_file or train_file,
        split,
        args.per_device_eval_batch_size,
        None,
        max_length=max_length,
        doc_stride=doc_stride,
        max_answer_length=max_answer_length,
        n_best=n_best,
    )
    results.extra["training"] = training
    results.save(Path(output_dir) / "results.json")
    return results


def _load_reader(model_dir: Path):
    return AutoModelForQuestionAnswering.from_pretrained(model_dir, dtype=torch.float32)


def evaluate(
    model_dir: str,
    data_file: str,
    split: str = "dev",
    batch_size: int = 32,
    predictions_file: str | None = None,
    max_length: int = 384,
    doc_stride: int = 128,
    max_answer_length: int = 30,
    n_best: int = 20,
) -> TaskResults:
    """SQuAD v1.1 EM/F1 of a saved QA model or committee folder; `predictions_file`: the official {id: answer} JSON."""
    examples = load_squad(data_file, split)
    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = committee.load(model_dir, _load_reader, committee.LogitsCommittee)
    features = make_features(examples, tokenizer, max_length, doc_stride)
    start_logits, end_logits = _window_logits(model, tokenizer, features, batch_size)
    answers = decode_answers(examples, features, start_logits, end_logits, n_best, max_answer_length)
    if predictions_file:
        Path(predictions_file).write_text(json.dumps(answers, ensure_ascii=False, indent=1), encoding="utf-8")
    return TaskResults(
        task="qa",
        dataset=str(data_file),
        split=split,
        metrics=squad_scores(answers, _references(examples)),
        model=str(model_dir),
        num_parameters=model.num_parameters(),
        seconds=time.perf_counter() - start,
        examples=len(examples),
        extra={
            "windows": len(features.offsets),
            "unanswered": sum(1 for a in answers.values() if not a),
            "max_length": max_length,
            "doc_stride": doc_stride,
            "max_answer_length": max_answer_length,
            "n_best": n_best,
        },
    )


def answer(
    model, tokenizer, question: str, context: str, max_length: int = 384, doc_stride: int = 128
) -> dict[str, str | int | float]:
    """The one QA inference path for raw text (the Space, pipelines): windows and decoding as in `evaluate`.

    Returns `{"answer", "start", "end", "score"}` (character offsets into `context`; "" and 0 when no span is
    valid); `score` is p(start) x p(end) of the chosen span, softmaxes over its window's context tokens.
    """
    examples = [SquadExample("0", "", context, question, [""], [0])]  # placeholder gold: positions go unused
    features = make_features(examples, tokenizer, max_length, doc_stride)
    if not features.offsets:
        raise ValueError("the question is too long to leave room for the context")
    start_logits, end_logits = _window_logits(model, tokenizer, features, 8)
    spans = decode_spans(features, start_logits, end_logits)
    if 0 not in spans:
        return {"answer": "", "start": 0, "end": 0, "score": 0.0}
    span = spans[0]
    offsets = features.offsets[span.window]
    valid = np.array([o is not None for o in offsets])
    p_start = _softmax(start_logits[span.window][: len(offsets)], valid)[span.first_token]
    p_end = _softmax(end_logits[span.window][: len(offsets)], valid)[span.last_token]
    return {"answer": context[span.start : span.end], "start": span.start, "end": span.end,
            "score": float(p_start * p_end)}  # fmt: skip


def _softmax(logits: np.ndarray, valid: np.ndarray) -> np.ndarray:
    z = np.where(valid, logits, -np.inf)
    z = np.exp(z - z.max())
    return z / z.sum()
