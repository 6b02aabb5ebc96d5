"""The learned segmenter: raw text -> sentences of tokens, multiword tokens expanded into syntactic words.

How (the Trankit approach, over atoms instead of subwords so that no boundary hides inside a subword):

* Text is cut into *atoms* (`ATOM`): runs of letters, runs of digits, single other characters; whitespace separates
  but is not an atom. Atoms only over-segment: every decision is learned. Measured on the 18 CoNLL-U files in
  ../shared: 99.8-100% of tokens are unions of atoms (en 0.19%, es 0.16%, et 0.07% are not: `km²`, `cockerspaniel`,
  `6p`); their inner boundary is lost and counted in training.
* Each atom is encoded by its subwords as they occur in running text: an atom glued to the previous one (no space
  between) starts with a continuation piece (`.` rather than `▁.`), so the encoder sees the spacing.
* A stock token-classification head over the atom's first subword labels what follows each atom: `J` the token goes
  on, `T` a token ends, `S` a token and the sentence end; `M` / `MS` likewise for a multiword token, which the
  lexicon learned from the treebank (`mwt.json`: most frequent expansion per lower-cased form) expands into words.
* Long text is read in windows: a core of at most `CORE_PIECES` subwords, with up to `CONTEXT_PIECES` of context
  on each side; each atom is labelled from the window where it is in the core, so all windows run as one batch.

Training data: the treebank's sentences in file order, their `# text` joined by single spaces (the files in ../shared
keep no paragraph breaks), token offsets from the forms and `SpaceAfter=No`. The segmenter is saved in a
`segmenter/` folder of the UD model (`time-hub finetune --task ud --segmenter_steps N`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from datasets import Dataset
from transformers import (
    AutoModelForTokenClassification,
    AutoTokenizer,
    DataCollatorForTokenClassification,
    EvalPrediction,
    PreTrainedTokenizerBase,
    TrainingArguments,
)

from time_hub.encoder import load_with_new_head
from time_hub.tasks.conllu import Sentence, sentence_tokens
from time_hub.tasks.ner import default_max_length, torch_logits
from time_hub.tasks.training import TaskTrainer, dev_selection_args, train_and_save

logger = logging.getLogger(__name__)

ATOM = re.compile(r"\d+|[^\W\d]+|[^\w\s]")
LABELS = ("J", "T", "S", "M", "MS")
TOKEN_ENDS, SENTENCE_ENDS, MULTIWORD = frozenset("T S M MS".split()), frozenset(("S", "MS")), frozenset(("M", "MS"))
CORE_PIECES, CONTEXT_PIECES = 160, 32  # at most; less for models with fewer positions (`window_sizes`)
ATOM_PIECES = 8  # an atom is read by its first pieces (a 300-piece run of letters must not fill a window)
MWT_FILE, FOLDER = "mwt.json", "segmenter"
IGNORE = -100


@dataclass
class Token:
    """A token of raw text: `text[start:end]`, the syntactic words it stands for (one unless a multiword token)."""

    form: str
    start: int
    end: int
    words: list[str]
    space_after: bool = True


def atoms(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in ATOM.finditer(text)]


def token_layout(sentence: Sentence) -> list[tuple[str, bool, list[str]]]:
    """(form, space after, word forms) per token of a CoNLL-U sentence."""
    return [(form, "SpaceAfter=No" not in misc.split("|"), [w.form for w in words])
            for form, misc, words in sentence_tokens(sentence)]  # fmt: skip


def sentence_text(sentence: Sentence) -> str:
    """`# text`, or the tokens joined as their SpaceAfter says."""
    if sentence.text is not None:
        return sentence.text
    return "".join(form + (" " if space else "") for form, space, _ in token_layout(sentence)).rstrip()


def treebank_text(sentences: Sequence[Sentence]) -> tuple[str, dict[int, str], dict[str, Counter], int]:
    """The sentences as running text, the gold label at each token-final character offset, the multiword lexicon
    counts, and how many sentences were left out because their forms do not spell their `# text`."""
    parts, ends, lexicon, misplaced, offset = [], {}, defaultdict(Counter), 0, 0
    for sentence in sentences:
        text, tokens = sentence_text(sentence), token_layout(sentence)
        position, placed = 0, []
        for form, _, words in tokens:
            while position < len(text) and text[position].isspace():
                position += 1
            if text[position : position + len(form)] != form:
                break
            position += len(form)
            placed.append((offset + position, len(words) > 1))
        if len(placed) < len(tokens):
            misplaced += 1
            continue
        for i, (end, multi) in enumerate(placed):
            last = i == len(placed) - 1
            ends[end] = ("MS" if last else "M") if multi else ("S" if last else "T")
        for form, _, words in tokens:
            if len(words) > 1:
                lexicon[form.lower()][" ".join(w.lower() for w in words)] += 1
        parts.append(text)
        offset += len(text) + 1
    return " ".join(parts), ends, lexicon, misplaced


class AtomEncoder:
    """Subword ids of atoms as they occur in running text (cached: atoms repeat)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase):
        self.tokenizer = tokenizer
        self.vocab = tokenizer.get_vocab()
        self.cache: dict[tuple[str, bool], list[int]] = {}
        self.cls = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
        self.sep = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id

    def __call__(self, atom: str, glued: bool) -> list[int]:
        key = (atom, glued)
        if key not in self.cache:
            pieces = self.tokenizer.tokenize(atom) or [self.tokenizer.unk_token]
            if glued and pieces[0].startswith("▁"):  # mid-word spelling when the vocabulary has it
                bare = pieces[0][1:]
                pieces = pieces[1:] if not bare else ([bare] if bare in self.vocab else pieces[:1]) + pieces[1:]
                pieces = pieces or [self.tokenizer.unk_token]
            self.cache[key] = self.tokenizer.convert_tokens_to_ids(pieces[:ATOM_PIECES])
        return self.cache[key]


def window_sizes(max_positions: int) -> tuple[int, int]:
    """(core, context) subwords per window for a model reading at most `max_positions` (special tokens included)."""
    usable = min(max_positions, CORE_PIECES + 2 * CONTEXT_PIECES + 2) - 2
    context = min(CONTEXT_PIECES, usable // 6)
    return usable - 2 * context, context


def windows(
    text: str, spans: list[tuple[int, int]], encode: AtomEncoder, sizes: tuple[int, int], shift: bool = False
) -> list[dict]:
    """Model inputs covering every atom once in a window's core: input_ids, the first-subword position of every atom
    in the window (`positions`, `atoms`: indices into `spans`) and the core's atom range. `sizes`: (core, context)
    subwords; `shift` halves the first core (a second view of the text in training)."""
    core_size, context = sizes
    ids = [encode(text[a:b], i > 0 and a == spans[i - 1][1]) for i, (a, b) in enumerate(spans)]
    cores, start = [], 0
    budget = core_size // 2 if shift else core_size
    while start < len(spans):
        end, used = start, 0
        while end < len(spans) and (end == start or used + len(ids[end]) <= budget):
            used += len(ids[end])
            end += 1
        cores.append((start, end))
        start, budget = end, core_size
    out = []
    for first, last in cores:
        left, used = first, 0
        while left > 0 and used + len(ids[left - 1]) <= context:
            left -= 1
            used += len(ids[left])
        right, used = last, 0
        while right < len(spans) and used + len(ids[right]) <= context:
            used += len(ids[right])
            right += 1
        input_ids, positions = [encode.cls], []
        for i in range(left, right):
            positions.append(len(input_ids))
            input_ids.extend(ids[i])
        input_ids.append(encode.sep)
        out.append(
            {"input_ids": input_ids, "positions": positions, "atoms": list(range(left, right)), "core": (first, last)}
        )
    return out


def training_windows(
    text: str, ends: dict[int, str], encode: AtomEncoder, label2id: dict[str, int], sizes: tuple[int, int]
) -> tuple[Dataset, int]:
    """Two views of the text (window edges shifted by half a core), labels on core atoms only; and how many token
    ends fall inside an atom (lost)."""
    spans = atoms(text)
    atom_ends = {b for _, b in spans}
    lost = sum(1 for end in ends if end not in atom_ends)
    rows = {"input_ids": [], "attention_mask": [], "labels": []}
    for shift in (False, True):
        for window in windows(text, spans, encode, sizes, shift):
            labels = [IGNORE] * len(window["input_ids"])
            first, last = window["core"]
            for position, atom in zip(window["positions"], window["atoms"]):
                if first <= atom < last:
                    labels[position] = label2id[ends.get(spans[atom][1], "J")]
            rows["input_ids"].append(window["input_ids"])
            rows["attention_mask"].append([1] * len(window["input_ids"]))
            rows["labels"].append(labels)
    return Dataset.from_dict(rows), lost


def boundary_scores(gold: Sequence[str], predicted: Sequence[str]) -> dict[str, float]:
    """F1 (%) of token ends, sentence ends and multiword tokens over aligned atom labels."""
    scores = {}
    for name, kinds in (("tokens", TOKEN_ENDS), ("sentences", SENTENCE_ENDS), ("multiword", MULTIWORD)):
        g = {i for i, label in enumerate(gold) if label in kinds}
        p = {i for i, label in enumerate(predicted) if label in kinds}
        scores[name] = 100.0 * 2 * len(g & p) / (len(g) + len(p)) if g or p else 100.0
    scores["boundaries"] = (scores["tokens"] + scores["sentences"]) / 2
    return scores


def finetune(
    model_name_or_path: str,
    train: Sequence[Sentence],
    dev: Sequence[Sentence] | None,
    output_dir: str | Path,
    training_args: TrainingArguments,
    steps: int,
    head_learning_rate: float | None = 1e-2,
) -> dict:
    """Train the segmenter for `steps` steps (selected on dev boundary F1 when there is a dev set) into
    `output_dir`; returns its summary (dev scores, lost boundaries, lexicon size)."""
    output_dir = Path(output_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_name_or_path)
    label2id = {label: i for i, label in enumerate(LABELS)}
    model = load_with_new_head(
        AutoModelForTokenClassification,
        model_name_or_path,
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id=label2id,
    )
    encode = AtomEncoder(tokenizer)
    sizes = window_sizes(default_max_length(tokenizer, model.config))
    text, ends, counts, misplaced = treebank_text(train)
    train_set, lost = training_windows(text, ends, encode, label2id, sizes)
    if misplaced or lost:
        logger.warning("segmenter: %d sentences whose forms do not match # text, %d token ends inside an atom "
                       "(left out)", misplaced, lost)  # fmt: skip
    kwargs = {}
    if dev:
        dev_set, _ = training_windows(*treebank_text(dev)[:2], encode, label2id, sizes)

        def compute_metrics(prediction: EvalPrediction) -> dict[str, float]:
            gold, predicted = [], []
            for labels, ids in zip(prediction.label_ids, prediction.predictions):
                keep = labels != IGNORE
                gold += [LABELS[i] for i in labels[keep]]
                predicted += [LABELS[i] for i in ids[keep]]
            return boundary_scores(gold, predicted)

        kwargs = {"eval_dataset": dev_set, "compute_metrics": compute_metrics}
    every = max(1, steps // 4)
    args = dataclasses.replace(
        training_args, max_steps=steps, eval_strategy="steps" if dev else "no", eval_steps=every,
        save_strategy="steps", save_steps=every, metric_for_best_model=None, load_best_model_at_end=False,
    )  # fmt: skip
    args = dev_selection_args(args, str(output_dir), "boundaries", bool(dev))
    trainer = TaskTrainer(
        model=model,
        args=args,
        data_collator=DataCollatorForTokenClassification(tokenizer),
        processing_class=tokenizer,
        train_dataset=train_set,
        head_learning_rate=head_learning_rate,
        preprocess_logits_for_metrics=lambda logits, labels: logits.argmax(dim=-1),
        **kwargs,
    )
    summary = train_and_save(trainer, str(output_dir))
    lexicon = {form: expansions.most_common(1)[0][0].split(" ") for form, expansions in sorted(counts.items())}
    (output_dir / MWT_FILE).write_text(json.dumps(lexicon, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    summary |= {"lost_token_ends": lost, "misplaced_sentences": misplaced, "multiword_forms": len(lexicon)}
    evaluations = [entry for entry in trainer.state.log_history if "eval_boundaries" in entry]
    if evaluations:  # the selected checkpoint's dev scores
        best = max(evaluations, key=lambda entry: entry["eval_boundaries"])
        summary["dev"] = {name: best[f"eval_{name}"] for name in ("tokens", "sentences", "multiword", "boundaries")}
    return summary


class Segmenter:
    """Raw documents -> sentences of `Token`s, with a trained token-classification model (or ONNX session)."""

    def __init__(self, logits_fn: Callable, tokenizer: PreTrainedTokenizerBase, config, lexicon: dict):
        self.logits_fn, self.tokenizer, self.id2label, self.lexicon = logits_fn, tokenizer, config.id2label, lexicon
        self.encode = AtomEncoder(tokenizer)
        self.sizes = window_sizes(default_max_length(tokenizer, config))
        self.unknown_multiword = 0  # multiword tokens predicted for forms the lexicon lacks (kept as one word)

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str = "cpu") -> Segmenter:
        directory = Path(directory)
        model = AutoModelForTokenClassification.from_pretrained(directory, dtype=torch.float32).to(device).eval()
        lexicon = json.loads((directory / MWT_FILE).read_text(encoding="utf-8"))
        return cls(torch_logits(model), AutoTokenizer.from_pretrained(directory), model.config, lexicon)

    @torch.inference_mode()
    def labels(
        self, texts: Sequence[str], batch_size: int = 32
    ) -> tuple[list[list[tuple[int, int]]], list[list[str]]]:
        """The atoms of every text and the label of each."""
        jobs = []  # (text index, window)
        spans = [atoms(text) for text in texts]
        for t, text in enumerate(texts):
            jobs += [(t, w) for w in windows(text, spans[t], self.encode, self.sizes)]
        out = [["J"] * len(s) for s in spans]
        jobs.sort(key=lambda job: len(job[1]["input_ids"]))
        pad = self.tokenizer.pad_token_id
        for i in range(0, len(jobs), batch_size):
            batch = jobs[i : i + batch_size]
            width = max(len(w["input_ids"]) for _, w in batch)
            input_ids = torch.tensor([w["input_ids"] + [pad] * (width - len(w["input_ids"])) for _, w in batch])
            mask = torch.tensor([[1] * len(w["input_ids"]) + [0] * (width - len(w["input_ids"])) for _, w in batch])
            predicted = torch.as_tensor(self.logits_fn(input_ids, mask)).argmax(-1)
            for row, (t, window) in enumerate(batch):
                first, last = window["core"]
                for position, atom in zip(window["positions"], window["atoms"]):
                    if first <= atom < last:
                        out[t][atom] = self.id2label[int(predicted[row, position])]
        return spans, out

    def __call__(self, texts: Sequence[str], batch_size: int = 32) -> list[list[list[Token]]]:
        """Per text, its sentences of tokens. The last token of a text always ends a sentence."""
        documents = []
        for text, spans, labels in zip(texts, *self.labels(texts, batch_size)):
            sentences, tokens, start = [], [], None
            for i, ((a, b), label) in enumerate(zip(spans, labels)):
                start = a if start is None else start
                last = i == len(spans) - 1
                if label == "J" and not last:
                    continue
                tokens.append(self._token(text, start, b, label in MULTIWORD))
                start = None
                if label in SENTENCE_ENDS or last:
                    sentences.append(tokens)
                    tokens = []
            documents.append(sentences)
        return documents

    def _token(self, text: str, start: int, end: int, multiword: bool) -> Token:
        form = text[start:end]
        words = [form]
        if multiword:
            expansion = self.lexicon.get(form.lower())
            if expansion is None:
                self.unknown_multiword += 1
            else:
                words = list(expansion)
                if form[:1].isupper():
                    words[0] = words[0][:1].upper() + words[0][1:]
        return Token(form, start, end, words, space_after=end >= len(text) or text[end].isspace())
