"""Named-entity recognition: read IOB2 data, fine-tune a stock token-classification head, score with seqeval.

Conventions, shared by training-time model selection and `evaluate` so both report the same numbers:

- Tags are IOB2 (`O`, `B-X`, `I-X`). An `I-X` that does not continue an `X` entity (first in a sentence, after `O`,
  or after another type) is repaired to `B-X`, the conlleval convention, and the repairs are counted in the log with
  their file:line (the Danish UNER train file has 6 of them). `repair=False` makes them errors instead. Any other
  malformed tag or line is an error naming file:line.
- Scores are seqeval's entity-level micro precision/recall/F1 in its default (conlleval-compatible) mode, which reads
  a predicted stray `I-X` with the same repair convention; `accuracy` is word-level tag accuracy.
- The first subword of a word carries its label, the others -100; a word's prediction is its first subword's.
- A sentence longer than `max_length` subwords is truncated (counted in the log); the words past the limit, and words
  that yield no subword at all, are predicted `O`, so they still count against recall.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from seqeval.metrics import accuracy_score, classification_report, f1_score, precision_score, recall_score
from transformers import (
    AutoModelForTokenClassification,
    AutoTokenizer,
    DataCollatorForTokenClassification,
    EvalPrediction,
    PreTrainedTokenizerBase,
    TrainingArguments,
    set_seed,
)

from time_hub.encoder import load_with_new_head
from time_hub.tasks import committee, silver
from time_hub.tasks.results import TaskResults
from time_hub.tasks.training import (
    HUB_SPLITS,
    TaskTrainer,
    dev_selection_args,
    hub_dataset_id,
    train_and_save,
)
from time_hub.text_file import excerpt, read_text

logger = logging.getLogger(__name__)

_TAG = re.compile(r"O|[BI]-\S+")
# Our split names -> the names Hub datasets use.


@dataclass
class NerSentence:
    tokens: list[str]
    tags: list[str]
    source: str  # "file:line" of the first token (or "hub id[split][index]"), for messages and prediction files


def repair_iob2(tags: list[str], where: list[str], repair: bool = True) -> list[str]:
    """Validate `tags` as IOB2 in place; return the locations of the stray `I-X` rewritten to `B-X`.

    `where[i]` names the location of `tags[i]` for messages. A malformed tag is always an error; a stray `I-X` is an
    error only when `repair` is False.
    """
    repaired = []
    previous = "O"
    for i, tag in enumerate(tags):
        if not _TAG.fullmatch(tag):
            raise ValueError(f"{where[i]}: invalid IOB2 tag {excerpt(tag)} (expected O, B-<type> or I-<type>)")
        if tag.startswith("I-") and (previous == "O" or previous[2:] != tag[2:]):
            if not repair:
                raise ValueError(
                    f"{where[i]}: {tag} does not continue an entity (previous tag {previous}); IOB2 "
                    f"needs B-{tag[2:]} here"
                )
            tags[i] = "B-" + tag[2:]
            repaired.append(where[i])
        previous = tags[i]
    return repaired


def _is_comment(line: str, fields: list[str]) -> bool:
    """`#` lines are comments, except a 2-column token line whose token is `#` (e.g. `#<TAB>O`)."""
    return line.startswith("#") and not (len(fields) == 2 and _TAG.fullmatch(fields[1]))


def read_iob2(path: str | Path, repair: bool = True) -> list[NerSentence]:
    """Read a CoNLL-style IOB2 file: `ID<TAB>token<TAB>tag[<TAB>...]` (the UNER format) or plain `token tag` lines.

    Sentences are separated by blank lines; `#` lines are comments. See the module docstring for tag repair.
    """
    path = Path(path)
    sentences: list[NerSentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    where: list[str] = []
    repaired: list[str] = []

    def flush() -> None:
        if tokens:
            repaired.extend(repair_iob2(tags, where, repair))
            sentences.append(NerSentence(list(tokens), list(tags), where[0]))
        for part in (tokens, tags, where):
            part.clear()

    for lineno, raw in enumerate(read_text(path).split("\n"), 1):
        line = raw.rstrip("\r")
        if not line.strip():
            flush()
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        if _is_comment(line, fields):
            continue
        if len(fields) >= 3 and fields[0].isdigit():
            token, tag = fields[1], fields[2]
        elif len(fields) == 2:
            token, tag = fields
        else:
            raise ValueError(
                f"{path}:{lineno}: expected 'ID<TAB>token<TAB>tag[<TAB>...]' or 'token tag', got {excerpt(line)}"
            )
        if not token.strip():
            raise ValueError(f"{path}:{lineno}: empty token")
        tokens.append(token)
        tags.append(tag.strip())
        where.append(f"{path}:{lineno}")
    flush()
    if not sentences:
        raise ValueError(f"{path}: no sentences found")
    if repaired:
        logger.warning("%s: repaired %d stray I-X tags to B-X (first at %s)", path, len(repaired), repaired[0])
    logger.info("%s: %d sentences, %d tokens", path, len(sentences), sum(len(s.tokens) for s in sentences))
    return sentences


def load_ner(source: str | Path, split: str = "train") -> list[NerSentence]:
    """A local IOB2 file, or a Hub dataset named `org/name[:config]` (WikiANN: `unimelb-nlp/wikiann:da`)."""
    if Path(source).exists():
        return read_iob2(source)
    source = hub_dataset_id(source, "unimelb-nlp/wikiann:da", with_config=True)
    # Untested offline (tests never reach the Hub). datasets 5.x runs no loading scripts: WikiANN loads as parquet
    # data files from `unimelb-nlp/wikiann`, with the language code as config; `ner_tags` is a ClassLabel sequence.
    from datasets import load_dataset

    name, _, config = source.partition(":")
    hub_split = HUB_SPLITS.get(split, split)
    data = load_dataset(name, config or None, split=hub_split)
    names = data.features["ner_tags"].feature.names
    sentences, repaired = [], 0
    for i, row in enumerate(data):
        tags = [names[t] for t in row["ner_tags"]]
        where = f"{source}[{hub_split}][{i}]"
        repaired += len(repair_iob2(tags, [where] * len(tags)))
        sentences.append(NerSentence(list(row["tokens"]), tags, where))
    if repaired:
        logger.warning("%s [%s]: repaired %d stray I-X tags to B-X", source, hub_split, repaired)
    return sentences


def check_known_types(sentences: list[NerSentence], label2id: dict[str, int], data: str, model: str) -> None:
    """Gold entity types the model cannot predict would score as misses in silence: refuse them, naming the first."""
    known = {label[2:] for label in label2id if label != "O"}
    for sentence in sentences:
        unknown = sorted({tag[2:] for tag in sentence.tags if tag != "O"} - known)
        if unknown:
            raise ValueError(
                f"{sentence.source}: entity type {unknown[0]} of {data} is not a label of the model {model} "
                f"(it knows {', '.join(sorted(known)) or 'none'})"
            )


def label_list(sentences: list[NerSentence]) -> list[str]:
    """`O`, then `B-X`, `I-X` for every entity type X seen (both prefixes, even if the data lacks one of them)."""
    types = sorted({tag[2:] for s in sentences for tag in s.tags if tag != "O"})
    return ["O"] + [f"{prefix}-{t}" for t in types for prefix in "BI"]


def encode(
    sentences: list[NerSentence], tokenizer: PreTrainedTokenizerBase, label2id: dict[str, int], max_length: int
) -> tuple[Dataset, list[list[int]]]:
    """Tokenize words into subwords and align labels (first subword labelled, the rest -100).

    Returns the model inputs and, per sentence and word, the position of the word's first subword (-1 when the word
    was truncated away or produced no subword). Tags unknown to `label2id` get -100: they do not enter the loss but
    are still scored, since predictions are read through the first-subword positions.
    """
    enc = tokenizer([s.tokens for s in sentences], is_split_into_words=True, truncation=True, max_length=max_length)
    labels, first_subword = [], []
    truncated = empty = 0
    for i, sentence in enumerate(sentences):
        firsts = [-1] * len(sentence.tokens)
        row = []
        previous = None
        word_ids = enc.word_ids(i)
        for position, word in enumerate(word_ids):
            if word is not None and word != previous:
                firsts[word] = position
                row.append(label2id.get(sentence.tags[word], -100))
            else:
                row.append(-100)
            previous = word
        last = max((w for w in word_ids if w is not None), default=-1)
        if last < len(firsts) - 1 and len(enc["input_ids"][i]) >= max_length:
            truncated += 1
        empty += sum(1 for w in range(last + 1) if firsts[w] < 0)
        labels.append(row)
        first_subword.append(firsts)
    if truncated:
        logger.warning(
            "%d of %d sentences exceed %d subwords: truncated, the words past the limit are predicted O",
            truncated,
            len(sentences),
            max_length,
        )
    if empty:
        logger.warning("%d words produce no subword and are predicted O", empty)
    dataset = Dataset.from_dict(
        {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": labels}
    )
    return dataset, first_subword


def word_predictions(
    pred_ids: np.ndarray, first_subword: list[list[int]], id2label: dict[int, str]
) -> list[list[str]]:
    """Word-level tags from subword-level predicted label ids; words without a first subword get `O`."""
    return [[id2label[int(row[p])] if p >= 0 else "O" for p in firsts] for row, firsts in zip(pred_ids, first_subword)]


def entity_scores(gold: list[list[str]], predicted: list[list[str]]) -> dict[str, float]:
    """seqeval entity-level micro precision/recall/F1 (default, conlleval-compatible mode) and word accuracy, in %."""
    if len(gold) != len(predicted) or any(len(g) != len(p) for g, p in zip(gold, predicted)):
        raise ValueError("entity_scores: gold and predicted tag sequences differ in shape")
    return {
        "precision": 100.0 * float(precision_score(gold, predicted, zero_division=0)),
        "recall": 100.0 * float(recall_score(gold, predicted, zero_division=0)),
        "f1": 100.0 * float(f1_score(gold, predicted, zero_division=0)),
        "accuracy": 100.0 * float(accuracy_score(gold, predicted)),
    }


def _argmax(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Keep only predicted ids across the dev evaluations of training, not the full logits."""
    return logits.argmax(dim=-1)


def default_max_length(tokenizer: PreTrainedTokenizerBase, config) -> int:
    """What the model accepts (at most 512 subwords), so only very long sentences truncate."""
    return min(tokenizer.model_max_length, config.max_position_embeddings, 512)


def torch_logits(model) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """`(input_ids, attention_mask) -> logits` of a token-classification model or committee, on its device."""
    device = next(model.parameters()).device

    def logits(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).logits.float().cpu()

    return logits


@torch.inference_mode()
def tag_words(
    logits_fn: Callable,
    tokenizer: PreTrainedTokenizerBase,
    config,
    words: list[list[str]],
    batch_size: int = 32,
    max_length: int | None = None,
) -> tuple[list[list[str]], list[list[float]]]:
    """The one NER inference path (evaluation, the Space, ONNX export checks): word-level tags of pre-split
    sentences and their probabilities. A word's tag is its first subword's argmax, as in training; words truncated
    away are `O` (probability 1). `logits_fn(input_ids, attention_mask)` is any tagger: `torch_logits(model)` or an
    ONNX session."""
    sentences = [NerSentence(list(w), ["O"] * len(w), "") for w in words]
    max_length = max_length or default_max_length(tokenizer, config)
    dataset, firsts = encode(sentences, tokenizer, {}, max_length)  # no gold labels: all -100
    collate = DataCollatorForTokenClassification(tokenizer, return_tensors="pt")
    tags, probs = [], []
    for i in range(0, len(dataset), batch_size):
        batch = collate([dataset[j] for j in range(i, min(i + batch_size, len(dataset)))])
        logits = torch.as_tensor(logits_fn(batch["input_ids"], batch["attention_mask"])).float()
        ids, best = logits.argmax(-1), logits.softmax(-1).max(-1).values
        for row, positions in enumerate(firsts[i : i + batch_size]):
            tags.append([config.id2label[int(ids[row, q])] if q >= 0 else "O" for q in positions])
            probs.append([float(best[row, q]) if q >= 0 else 1.0 for q in positions])
    return tags, probs


def entity_spans(tags: list[str], probs: list[float]) -> list[tuple[str, int, int, float]]:
    """Entities of one tagged sentence as (type, first word, last word, mean tag probability), IOB2 read the
    conlleval way (a stray `I-X` starts an entity), as seqeval scores them."""
    spans: list[list] = []
    current = None
    for i, (tag, p) in enumerate(zip(tags, probs)):
        kind = tag[2:] if tag != "O" else None
        if kind and tag.startswith("I-") and current and current[0] == kind:
            current[2], current[3] = i, [*current[3], p]
            continue
        current = [kind, i, i, [p]] if kind else None
        if current:
            spans.append(current)
    return [(kind, first, last, float(np.mean(ps))) for kind, first, last, ps in spans]


def finetune(
    model_name_or_path: str,
    train_file: str,
    dev_file: str | None,
    output_dir: str,
    training_args: TrainingArguments,
    max_length: int = 256,
    *,
    early_stopping_patience: int | None = None,
    head_learning_rate: float | None = 1e-2,
    silver_teacher: str | None = None,
    silver_text: Sequence[str] = (),
    silver_file: str | None = None,
    silver_max_bytes: int | None = None,
    gold_repeat: int = 4,
) -> TaskResults:
    """Fine-tune a token-classification head on `train_file`, keep the best evaluation by dev entity F1, save the
    model (with `id2label`/`label2id`, usable by `pipeline("token-classification")`) and `results.json` in
    `output_dir`.

    Returns `evaluate(output_dir, dev_file)` (split "dev") with the training summary in `extra["training"]`; without
    a dev file the model is scored on the training file (split "train"). `head_learning_rate`: peak learning rate
    of the new head (None: everything at `training_args.learning_rate`); 1e-2 is measured, see `TaskTrainer`.
    `silver_teacher` (a fine-tuned tagger): its tags of the words of `silver_text` (lines holding a train or dev
    sentence left out; at most `silver_max_bytes`) are added to the training data, the gold sentences repeated
    `gold_repeat` times (`time_hub.tasks.silver`; kept in `silver_file`, default `output_dir/silver.iob2`).
    """
    set_seed(training_args.seed)  # before the head is initialised
    train = load_ner(train_file, "train")
    dev = load_ner(dev_file, "dev") if dev_file else []
    gold_train, silver_summary = train, None
    if silver_teacher:
        output = silver_file or Path(output_dir) / "silver.iob2"
        extra = silver.ner_silver_sentences(silver_teacher, silver_text, [*train, *dev], output, silver_max_bytes)
        train, silver_summary = silver.mixed(gold_train, extra, gold_repeat, silver_teacher, output)
    labels = label_list(train + dev)
    label2id = {label: i for i, label in enumerate(labels)}
    tokenizer = AutoTokenizer.from_pretrained(model_name_or_path)
    model = load_with_new_head(
        AutoModelForTokenClassification,
        model_name_or_path,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id=label2id,
    )
    train_set, _ = encode(train, tokenizer, label2id, max_length)
    kwargs = {}
    if dev:
        dev_set, dev_firsts = encode(dev, tokenizer, label2id, max_length)
        gold = [s.tags for s in dev]

        def compute_metrics(prediction: EvalPrediction) -> dict[str, float]:
            return entity_scores(gold, word_predictions(prediction.predictions, dev_firsts, model.config.id2label))

        kwargs = {"eval_dataset": dev_set, "compute_metrics": compute_metrics}
    args = dev_selection_args(training_args, output_dir, "f1", bool(dev))
    trainer = TaskTrainer(
        model=model,
        args=args,
        data_collator=DataCollatorForTokenClassification(tokenizer),
        processing_class=tokenizer,
        preprocess_logits_for_metrics=_argmax,
        train_dataset=train_set,
        head_learning_rate=head_learning_rate,
        **kwargs,
    )
    training = {
        "train_file": str(train_file),
        "sentences": len(gold_train),
        "labels": labels,
        "max_length": max_length,
    }
    training |= train_and_save(trainer, output_dir, early_stopping_patience)
    if silver_summary:
        training["silver"] = silver_summary
    split = "dev" if dev_file else "train"
    results = evaluate(output_dir, dev_file or train_file, split, batch_size=args.per_device_eval_batch_size)
    results.extra["training"] = training
    results.save(Path(output_dir) / "results.json")
    return results


def format_iob2(sentences: list[NerSentence]) -> str:
    """IOB2 text `ID<TAB>token<TAB>tag`, sentences separated by blank lines (what `read_iob2` reads)."""
    return "".join(
        "".join(f"{i}\t{token}\t{tag}\n" for i, (token, tag) in enumerate(zip(s.tokens, s.tags), 1)) + "\n"
        for s in sentences
    )


def write_predictions(path: str | Path, sentences: list[NerSentence], predicted: list[list[str]]) -> None:
    """An IOB2 file `ID token predicted gold` (readable again by `read_iob2`, whose tag column is the prediction)."""
    with Path(path).open("w", encoding="utf-8") as f:
        for sentence, tags in zip(sentences, predicted):
            f.write(f"# source = {sentence.source}\n")
            for i, (token, gold, pred) in enumerate(zip(sentence.tokens, sentence.tags, tags), 1):
                f.write(f"{i}\t{token}\t{pred}\t{gold}\n")
            f.write("\n")


def _load_one(model_dir: Path):
    return AutoModelForTokenClassification.from_pretrained(model_dir, dtype=torch.float32)


def load_tagger(model_dir: str | Path):
    """A fine-tuned tagger (or committee folder), in eval mode, on the GPU when there is one."""
    model = committee.load(model_dir, _load_one, committee.LogitsCommittee)
    return model.to("cuda" if torch.cuda.is_available() else "cpu").eval()


def evaluate(
    model_dir: str,
    data_file: str,
    split: str = "dev",
    batch_size: int = 32,
    predictions_file: str | None = None,
    max_length: int | None = None,
) -> TaskResults:
    """Score a saved token-classification model (or committee folder) on an IOB2 file (or Hub dataset), entity level.

    `max_length` defaults to what the model accepts (`default_max_length`).
    """
    sentences = load_ner(data_file, split)
    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = load_tagger(model_dir)
    check_known_types(sentences, model.config.label2id, data_file, model_dir)
    max_length = max_length or default_max_length(tokenizer, model.config)
    tokens = [s.tokens for s in sentences]
    predicted, _ = tag_words(torch_logits(model), tokenizer, model.config, tokens, batch_size, max_length)
    gold = [s.tags for s in sentences]
    metrics = entity_scores(gold, predicted)
    if predictions_file:
        write_predictions(predictions_file, sentences, predicted)
    report = classification_report(gold, predicted, output_dict=True, zero_division=0)
    per_type = {
        name: {k: (100.0 * float(v) if k != "support" else int(v)) for k, v in scores.items()}
        for name, scores in report.items()
        if "avg" not in name
    }
    return TaskResults(
        task="ner",
        dataset=str(data_file),
        split=split,
        metrics=metrics,
        model=str(model_dir),
        num_parameters=model.num_parameters(),
        seconds=time.perf_counter() - start,
        examples=len(sentences),
        extra={"per_type": per_type, "max_length": max_length, "scoring": "seqeval default (conlleval) mode, IOB2"},
    )
