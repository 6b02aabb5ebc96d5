"""The multi-task UD model: a transformers encoder plus small heads, its input encoding, saving and prediction.

Heads (on the layer mix described below, after dropout):

* UPOS, XPOS, UFeats and lemma: one linear classifier each. UFeats is a single label per word, the whole FEATS
  string (as in UDPipe 2); the lemma label is an edit-script rule (`lemma_rules`).
* Arcs: a biaffine scorer (Dozat & Manning 2017): `s[d, h] = dep_d^T U head_h + head_h^T u`, where dep/head are
  small MLP projections of the word vectors; the root is the encoder's first token (`<s>` / `[CLS]`).
* Deprels: a bilinear + linear classifier on (dependent, head) projections, applied to the gold head in training and
  to the decoded head in prediction.

The heads read a learned softmax-weighted sum of all encoder layers (embeddings included; a "scalar mix" as in UDify):
the last layer of a sentence-embedding model such as multilingual-e5 is its least syntactic one (a linear UPOS probe
on frozen me5-small reaches about 78% on its last layer but 90% on layer 6, Danish-DDT).

A word is represented by its FIRST subword. Each word is tokenized on its own (so every word gets at least one piece:
an empty tokenization becomes `<unk>`), then the sentence is `[CLS] pieces [SEP]` cut to `max_length`. Words whose
first piece falls beyond the cut are *truncated*: they are counted and logged, ignored by the loss, and in prediction
get the most frequent training label, the form as lemma, and are attached to the root's child with the most frequent
non-root deprel, so the output is still a well-formed tree. With the default 256 pieces this is rare (very long
sentences only).

Saved layout (`save_pretrained`): the encoder via its own `save_pretrained` (safetensors) and the tokenizer in the
directory, the heads in `ud_heads.safetensors`, label vocabularies and settings in `ud_config.json`.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import safetensors.torch
import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from time_hub.encoder import load_encoder
from time_hub.tasks.conllu import Sentence, replace_columns
from time_hub.tasks.lemma_rules import apply_rule, lemma_rule
from time_hub.tasks.ud_parser import decode_tree

if TYPE_CHECKING:
    from time_hub.tasks.committee import UDCommittee

logger = logging.getLogger(__name__)

HEADS_FILE = "ud_heads.safetensors"
CONFIG_FILE = "ud_config.json"
CONFIG_FORMAT = 1
TAGS = ("upos", "xpos", "feats", "lemma")
IGNORE = -100


@dataclass
class UDLabels:
    """Label vocabularies, each sorted by training frequency (most frequent first, used as the fallback label)."""

    upos: list[str]
    xpos: list[str]
    feats: list[str]
    lemma: list[str]  # lemma rules
    deprel: list[str]

    @classmethod
    def from_sentences(cls, sentences: Sequence[Sentence]) -> UDLabels:
        counts = {name: Counter() for name in (*TAGS, "deprel")}
        for sentence in sentences:
            for w in sentence.words:
                for name in ("upos", "xpos", "feats", "deprel"):
                    counts[name][getattr(w, name)] += 1
                if w.lemma != "_":  # "_" means no gold lemma
                    counts["lemma"][lemma_rule(w.form, w.lemma)] += 1
        vocab = {
            name: [label for label, _ in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))]
            for name, c in counts.items()
        }
        if not vocab["lemma"]:
            vocab["lemma"] = [lemma_rule("_", "_")]  # identity rule: a treebank without lemmas still gets a head
        return cls(**vocab)


@dataclass
class UDSettings:
    """Model settings saved with it. `max_length` counts subword pieces including the two special tokens."""

    max_length: int = 256
    arc_dim: int = 256
    deprel_dim: int = 128
    dropout: float = 0.1


def _mlp(dim_in: int, dim_out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim_in, dim_out), nn.GELU(), nn.Dropout(dropout))


def _cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over labels != IGNORE; zero (not NaN) when a batch has none."""
    if not bool((labels != IGNORE).any()):
        return logits.sum() * 0.0
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE)


class UDModel(nn.Module):
    """Encoder + tagging, lemma, arc and deprel heads. `forward` returns a dict with `loss` when labels are given."""

    def __init__(self, encoder: nn.Module, labels: UDLabels, settings: UDSettings | None = None):
        super().__init__()
        self.encoder, self.labels, self.settings = encoder, labels, settings or UDSettings()
        hidden, s = encoder.config.hidden_size, self.settings
        positions = getattr(encoder.config, "max_position_embeddings", None)
        if positions is not None and s.max_length > positions:
            raise ValueError(f"max_length={s.max_length} exceeds the encoder's {positions} positions")
        self.dropout = nn.Dropout(s.dropout)
        self.layer_weights = nn.Parameter(torch.zeros(encoder.config.num_hidden_layers + 1))
        self.layer_scale = nn.Parameter(torch.ones(()))
        self.taggers = nn.ModuleDict({name: nn.Linear(hidden, len(getattr(labels, name))) for name in TAGS})
        self.arc_dep, self.arc_head = _mlp(hidden, s.arc_dim, s.dropout), _mlp(hidden, s.arc_dim, s.dropout)
        self.arc_weight = nn.Parameter(torch.zeros(s.arc_dim, s.arc_dim))
        self.arc_head_bias = nn.Parameter(torch.zeros(s.arc_dim))
        self.rel_dep, self.rel_head = _mlp(hidden, s.deprel_dim, s.dropout), _mlp(hidden, s.deprel_dim, s.dropout)
        self.rel_weight = nn.Parameter(torch.zeros(s.deprel_dim, len(labels.deprel), s.deprel_dim))
        self.rel_linear = nn.Linear(2 * s.deprel_dim, len(labels.deprel))
        # `(input_ids, attention_mask) -> layer mix` from elsewhere (an ONNX session of `mixed_states`) in prediction
        self.mixed_states_fn: Callable | None = None

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        """Encoder + heads; the signature matches `PreTrainedModel.num_parameters`, which `Trainer` calls for FLOPs."""
        total = sum(p.numel() for p in self.parameters())
        if exclude_embeddings:
            total -= sum(m.weight.numel() for m in self.modules() if isinstance(m, nn.Embedding))
        return total

    def mixed_states(self, input_ids, attention_mask) -> torch.Tensor:
        """(batch, tokens, hidden): the learned layer mix the heads read (what `time-hub export` writes as ONNX)."""
        layers = self.encoder(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        weights = torch.softmax(self.layer_weights, dim=0)
        return self.layer_scale * sum(w * h for w, h in zip(weights, layers.hidden_states))

    def word_vectors(self, input_ids, attention_mask, word_starts) -> torch.Tensor:
        """(batch, 1 + words, hidden): the root (first token) then each word's first subword, from the layer mix."""
        if self.mixed_states_fn is not None:
            hidden = torch.as_tensor(self.mixed_states_fn(input_ids.cpu(), attention_mask.cpu())).to(input_ids.device)
        else:
            hidden = self.mixed_states(input_ids, attention_mask)
        index = word_starts.unsqueeze(-1).expand(-1, -1, hidden.shape[-1])
        return self.dropout(torch.gather(hidden, 1, index))

    def arc_scores(self, words: torch.Tensor, word_mask: torch.Tensor) -> torch.Tensor:
        """(batch, dependents 1..W, heads 0..W) scores; padding heads and self-loops are -inf."""
        dep, head = self.arc_dep(words[:, 1:]), self.arc_head(words)
        scores = dep @ self.arc_weight @ head.transpose(1, 2) + (head @ self.arc_head_bias).unsqueeze(1)
        n = words.shape[1] - 1
        positions = torch.arange(n + 1, device=words.device)
        self_loop = positions[1:, None] == positions[None, :]
        invalid = ~word_mask.unsqueeze(1) | self_loop.unsqueeze(0)
        return scores.masked_fill(invalid, float("-inf"))

    def deprel_logits(self, words: torch.Tensor, heads: torch.Tensor) -> torch.Tensor:
        """(batch, W, deprels) for each dependent attached to `heads` (batch, W; IGNORE entries read the root)."""
        dep = self.rel_dep(words[:, 1:])
        head_words = torch.gather(words, 1, heads.clamp(min=0).unsqueeze(-1).expand(-1, -1, words.shape[-1]))
        head = self.rel_head(head_words)
        # bilinear term dep^T W_l head for every label l, as one matmul (nn.Bilinear is far slower on CPU)
        d = self.settings.deprel_dim
        bilinear = ((dep @ self.rel_weight.view(d, -1)).unflatten(-1, (-1, d)) * head.unsqueeze(-2)).sum(-1)
        return bilinear + self.rel_linear(torch.cat([dep, head], -1))

    def predict_logits(self, words: torch.Tensor, word_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Tag logits (batch, W, labels) per tagging head and arc scores, from `word_vectors`."""
        outputs = {name: tagger(words[:, 1:]) for name, tagger in self.taggers.items()}
        outputs["arcs"] = self.arc_scores(words, word_mask)
        return outputs

    def forward(self, input_ids, attention_mask, word_starts, word_mask, **labels) -> dict[str, torch.Tensor]:
        """Logits, plus `loss` (sum of the six mean cross-entropies) when the label tensors are given."""
        words = self.word_vectors(input_ids, attention_mask, word_starts)
        outputs = self.predict_logits(words, word_mask)
        if labels:
            outputs["deprel"] = self.deprel_logits(words, labels["head"])
            losses = [_cross_entropy(outputs[name], labels[name]) for name in (*TAGS, "deprel")]
            losses.append(_cross_entropy(outputs["arcs"], labels["head"]))
            outputs["loss"] = torch.stack(losses).sum()
        return outputs

    def save_pretrained(self, directory: str | Path, tokenizer: PreTrainedTokenizerBase | None = None) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.encoder.save_pretrained(directory)
        if tokenizer is not None:
            tokenizer.save_pretrained(directory)
        heads = {
            k: v.detach().contiguous().cpu() for k, v in self.state_dict().items() if not k.startswith("encoder.")
        }
        safetensors.torch.save_file(heads, directory / HEADS_FILE, metadata={"format": "pt"})
        config = {"format": CONFIG_FORMAT, "settings": asdict(self.settings), "labels": asdict(self.labels)}
        (directory / CONFIG_FILE).write_text(json.dumps(config, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> UDModel:
        directory = Path(directory)
        config_path = directory / CONFIG_FILE
        if not config_path.is_file():
            raise FileNotFoundError(f"{config_path} not found: {directory} is not a fine-tuned UD model")
        config = json.loads(config_path.read_text(encoding="utf-8"))
        if config.get("format") != CONFIG_FORMAT:
            raise ValueError(f"{config_path}: unsupported format {config.get('format')!r}, expected {CONFIG_FORMAT}")
        model = cls(load_encoder(directory), UDLabels(**config["labels"]), UDSettings(**config["settings"]))
        missing, unexpected = model.load_state_dict(safetensors.torch.load_file(directory / HEADS_FILE), strict=False)
        missing = [k for k in missing if not k.startswith("encoder.")]
        if missing or unexpected:
            raise ValueError(f"{directory / HEADS_FILE}: missing {missing}, unexpected {unexpected}")
        return model.eval()


def encode_sentences(
    sentences: Sequence[Sentence], tokenizer: PreTrainedTokenizerBase, max_length: int, labels: UDLabels | None = None
) -> tuple[list[dict[str, list[int]]], int]:
    """Model inputs per sentence (plus label ids when `labels` is given) and the number of truncated words.

    Label ids unknown to `labels` (or a gold lemma `_`) become IGNORE, as do heads and deprels of words whose head was
    truncated.
    """
    if max_length < 3:
        raise ValueError(f"max_length must leave room for [CLS], one piece and [SEP], got {max_length}")
    cls_id = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    sep_id = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    pieces = tokenizer([w.form for s in sentences for w in s.words], add_special_tokens=False)["input_ids"]
    vocab = asdict(labels) if labels is not None else {}
    index = {name: {label: i for i, label in enumerate(values)} for name, values in vocab.items()}
    features, truncated, k = [], 0, 0
    for sentence in sentences:
        ids, starts = [cls_id], [0]
        for _ in sentence.words:
            starts.append(len(ids))
            ids.extend(pieces[k] or [tokenizer.unk_token_id])
            k += 1
        ids = ids[: max_length - 1] + [sep_id]
        starts = [p for p in starts if p < max_length - 1]
        kept = len(starts) - 1
        truncated += len(sentence.words) - kept
        feature = {"input_ids": ids, "word_starts": starts}
        if labels is not None:
            words = sentence.words[:kept]
            for name in ("upos", "xpos", "feats"):
                feature[name] = [index[name].get(getattr(w, name), IGNORE) for w in words]
            feature["lemma"] = [
                IGNORE if w.lemma == "_" else index["lemma"].get(lemma_rule(w.form, w.lemma), IGNORE) for w in words
            ]
            feature["head"] = [w.head if w.head <= kept else IGNORE for w in words]
            feature["deprel"] = [index["deprel"].get(w.deprel, IGNORE) if w.head <= kept else IGNORE for w in words]
        features.append(feature)
    return features, truncated


class UDCollator:
    """Pads a list of `encode_sentences` features into tensors (labels padded with IGNORE)."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        n_tokens = max(len(f["input_ids"]) for f in features)
        n_words = max(len(f["word_starts"]) for f in features)

        def pad(key: str, length: int, value: int) -> torch.Tensor:
            return torch.tensor([f[key] + [value] * (length - len(f[key])) for f in features])

        batch = {
            "input_ids": pad("input_ids", n_tokens, self.pad_token_id),
            "attention_mask": torch.tensor(
                [[1] * len(f["input_ids"]) + [0] * (n_tokens - len(f["input_ids"])) for f in features]
            ),
            "word_starts": pad("word_starts", n_words, 0),
            "word_mask": torch.tensor(
                [[True] * len(f["word_starts"]) + [False] * (n_words - len(f["word_starts"])) for f in features]
            ),
        }
        for key in (*TAGS, "head", "deprel"):
            if key in features[0]:
                batch[key] = pad(key, n_words - 1, IGNORE)
        return batch


def _decode_batch(
    model: UDModel | UDCommittee, batch: dict[str, torch.Tensor], sentences: Sequence[Sentence]
) -> list[Sentence]:
    """Predicted sentences for one batch: argmax tags, lemma rules, tree decoding, deprels on the decoded heads."""
    labels = model.labels
    words = model.word_vectors(batch["input_ids"], batch["attention_mask"], batch["word_starts"])
    outputs = model.predict_logits(words, batch["word_mask"])
    arc_logp = torch.log_softmax(outputs["arcs"], dim=-1).cpu().numpy()
    kept = (batch["word_mask"].sum(dim=1) - 1).tolist()
    heads = torch.full(batch["word_mask"][:, 1:].shape, IGNORE, dtype=torch.long)
    for b, m in enumerate(kept):
        scores = np.zeros((m + 1, m + 1))
        scores[:, 1:] = arc_logp[b, :m, : m + 1].T  # scores[h, d]
        scores[~np.isfinite(scores)] = 0.0  # self-loops; decode_tree excludes them anyway
        heads[b, :m] = torch.from_numpy(decode_tree(scores))
    rel_logits = model.deprel_logits(words, heads.to(batch["input_ids"].device))
    root = labels.deprel.index("root") if "root" in labels.deprel else None
    if root is not None:  # "root" exactly for the word attached to node 0
        is_root = (heads == 0).to(rel_logits.device).unsqueeze(-1)
        root_column = torch.arange(len(labels.deprel), device=rel_logits.device) == root
        rel_logits = rel_logits.masked_fill(is_root != root_column, float("-inf"))
    deprels = rel_logits.argmax(-1).cpu().tolist()
    tags = {name: outputs[name].argmax(-1).cpu().tolist() for name in TAGS}
    fallback_deprel = next((d for d in labels.deprel if d != "root"), labels.deprel[0])

    predicted = []
    for b, sentence in enumerate(sentences):
        m, n = kept[b], len(sentence.words)
        root_child = 1 + int(heads[b, :m].tolist().index(0))
        columns = {
            name: [getattr(labels, name)[i] for i in tags[name][b][:m]] + [getattr(labels, name)[0]] * (n - m)
            for name in ("upos", "xpos", "feats")
        }
        rules = [labels.lemma[i] for i in tags["lemma"][b][:m]]
        columns["lemma"] = [apply_rule(w.form, rules[i]) if i < m else w.form for i, w in enumerate(sentence.words)]
        columns["head"] = heads[b, :m].tolist() + [root_child] * (n - m)
        columns["deprel"] = [labels.deprel[i] for i in deprels[b][:m]] + [fallback_deprel] * (n - m)
        predicted.append(replace_columns(sentence, **columns))
    return predicted


@torch.no_grad()
def predict(
    model: UDModel | UDCommittee,
    tokenizer: PreTrainedTokenizerBase,
    sentences: Sequence[Sentence],
    batch_size: int = 32,
) -> tuple[list[Sentence], int]:
    """Predicted copies of `sentences` (UPOS, XPOS, FEATS, LEMMA, HEAD, DEPREL replaced) and the truncated-word count.

    Every predicted sentence is a tree with exactly one root child. Batches group sentences of similar length.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    features, truncated = encode_sentences(sentences, tokenizer, model.settings.max_length)
    if truncated:
        logger.warning(
            "%d of %d words were beyond max_length=%d pieces and got fallback predictions",
            truncated,
            sum(len(s.words) for s in sentences),
            model.settings.max_length,
        )
    collate = UDCollator(tokenizer.pad_token_id)
    order = sorted(range(len(sentences)), key=lambda i: len(features[i]["input_ids"]))
    predicted: list[Sentence | None] = [None] * len(sentences)
    for start in range(0, len(order), batch_size):
        ids = order[start : start + batch_size]
        batch = {k: v.to(device) for k, v in collate([features[i] for i in ids]).items()}
        for i, sentence in zip(ids, _decode_batch(model, batch, [sentences[i] for i in ids])):
            predicted[i] = sentence
    model.train(was_training)
    return predicted, truncated
