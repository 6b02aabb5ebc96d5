"""What the Space runs: NER, UD analysis, extractive QA and student-vs-teacher timing on TiME models.

Every function takes a model folder or Hub id and plain text, and returns plain Python data (no Gradio here), so the
app, the tests and a notebook can call it alike. Models are loaded lazily on first use and cached (a few per task).

Raw text is split into words by a simple regex (`WORD`: runs of letters/digits, keeping inner hyphens and
apostrophes, and each punctuation mark alone). The UD and NER models were trained on treebank/IOB2 tokens, so on
text that this regex splits differently (abbreviations with dots, multiword tokens such as Danish "i går") the
analysis can differ from the models' evaluation.
"""

from __future__ import annotations

import functools
import html
import re
import threading
from pathlib import Path

import torch
from transformers import AutoModelForQuestionAnswering, AutoModelForTokenClassification, AutoTokenizer

from time_hub.bench.measure import TimingSettings, make_batches, time_batches
from time_hub.bench.models import load as load_encoder
from time_hub.bench.report import load_bench, table
from time_hub.tasks.conllu import Sentence, Word
from time_hub.tasks.ner import entity_spans, tag_words, torch_logits
from time_hub.tasks.qa import answer
from time_hub.tasks.ud_model import UDModel
from time_hub.tasks.ud_model import predict as ud_predict

WORD = re.compile(r"\w+(?:[-'’]\w+)*|[^\w\s]")
MAX_PIECES = 256  # subword pieces per NER input (special tokens included)
QA_MAX_LENGTH, QA_STRIDE = 384, 128
_load_lock = threading.Lock()  # loads are serialized (no double load under the queue's concurrency); inference isn't


def words(text: str) -> list[tuple[str, int, int]]:
    """(word, start, end) character spans of `text`, by the `WORD` regex."""
    return [(m.group(), m.start(), m.end()) for m in WORD.finditer(text)]


def _locked(loader):
    """`functools.lru_cache` with loads serialized by one lock."""
    cached = functools.lru_cache(maxsize=4)(loader)

    @functools.wraps(loader)
    def wrapper(spec: str):
        with _load_lock:
            return cached(spec)

    wrapper.cache_clear = cached.cache_clear
    return wrapper


@_locked
def load_ner(spec: str):
    return AutoTokenizer.from_pretrained(spec), AutoModelForTokenClassification.from_pretrained(spec).eval()


@_locked
def load_ud(spec: str):
    if not Path(spec).is_dir():  # a Hub id: fetch the folder (encoder, tokenizer, ud_heads, ud_config)
        from huggingface_hub import snapshot_download

        spec = snapshot_download(spec)
    return AutoTokenizer.from_pretrained(spec), UDModel.from_pretrained(spec)


@_locked
def load_qa(spec: str):
    return AutoTokenizer.from_pretrained(spec), AutoModelForQuestionAnswering.from_pretrained(spec).eval()


@_locked
def load_timed(spec: str):
    """An encoder for timing (`time_hub.bench.models.load`: a task folder loads as its bare encoder)."""
    return load_encoder(spec, spec, "cpu", "fp32")


def ner(spec: str, text: str) -> list[dict]:
    """Entities as `{"entity", "word", "start", "end", "score"}` (character offsets into `text`), through
    `time_hub.tasks.ner`'s inference path (first-subword tags, conlleval reading of IOB2); `score` is the mean
    probability of the entity's word tags."""
    tokenizer, model = load_ner(spec)
    spans = words(text)
    if not spans:
        return []
    limit = _max_pieces(model.config, MAX_PIECES)
    (tags,), (probs,) = tag_words(torch_logits(model), tokenizer, model.config, [[w for w, _, _ in spans]], 1, limit)
    return [
        {
            "entity": kind,
            "word": text[spans[first][1] : spans[last][2]],
            "start": spans[first][1],
            "end": spans[last][2],
            "score": round(score, 4),
        }
        for kind, first, last, score in entity_spans(tags, probs)
    ]


@torch.inference_mode()
def ud(spec: str, text: str) -> list[Word]:
    """The UD analysis of `text` as one sentence: predicted `Word`s (UPOS, XPOS, FEATS, LEMMA, HEAD, DEPREL)."""
    tokenizer, model = load_ud(spec)
    forms = [w for w, _, _ in words(text)]
    if not forms:
        return []
    placeholders = [Word(i + 1, form, "_", "_", "_", "_", 0, "_") for i, form in enumerate(forms)]
    sentence = Sentence(lines=[None] * len(forms), words=placeholders)
    (predicted,), _ = ud_predict(model, tokenizer, [sentence])
    return predicted.words


def tree_svg(analysis: list[Word]) -> str:
    """A dependency tree as an inline SVG arc diagram: words with UPOS below, arcs from head to dependent above."""
    if not analysis:
        return ""
    widths = [max(len(w.form), len(w.upos), 4) * 8 + 24 for w in analysis]
    centers = [sum(widths[:i]) + widths[i] / 2 + 10 for i in range(len(widths))]
    longest = max([abs(w.head - w.id) for w in analysis if w.head] + [1])
    step, base = 26, 40 + 26 * min(longest, 12)
    height, width = base + 46, sum(widths) + 20
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'font-family="sans-serif" font-size="13" style="background:white">',
        '<defs><marker id="arrow" viewBox="0 0 8 8" refX="4" refY="8" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L8,0 L4,8 z" fill="#475569"/></marker></defs>',
    ]
    for w, x in zip(analysis, centers):
        parts.append(f'<text x="{x}" y="{base + 18}" text-anchor="middle">{html.escape(w.form)}</text>')
        parts.append(
            f'<text x="{x}" y="{base + 36}" text-anchor="middle" fill="#2563eb" font-size="11">{w.upos}</text>'
        )
        if w.head == 0:
            parts.append(f'<path d="M{x},14 L{x},{base}" stroke="#475569" fill="none" marker-end="url(#arrow)"/>')
            parts.append(f'<text x="{x + 4}" y="12" font-size="11" fill="#b45309">{html.escape(w.deprel)}</text>')
            continue
        x1, x2 = centers[w.head - 1], x + (-4 if w.head > w.id else 4)
        top = base - step * min(abs(w.head - w.id), 12)
        parts.append(
            f'<path d="M{x1},{base} C{x1},{top} {x2},{top} {x2},{base}" stroke="#475569" fill="none" '
            'marker-end="url(#arrow)"/>'
        )
        label_y = base + 0.75 * (top - base) - 3
        parts.append(
            f'<text x="{(x1 + x2) / 2}" y="{label_y}" text-anchor="middle" font-size="11" fill="#b45309" '
            f'paint-order="stroke" stroke="white" stroke-width="3">{html.escape(w.deprel)}</text>'
        )
    return "".join(parts) + "</svg>"


@torch.inference_mode()
def qa(spec: str, question: str, context: str) -> dict:
    """The best answer span `{"answer", "start", "end", "score"}` through `time_hub.tasks.qa.answer` (windows and
    decoding as in evaluation; `score` = p(start) x p(end))."""
    tokenizer, model = load_qa(spec)
    length = _max_pieces(model.config, QA_MAX_LENGTH)
    return answer(model, tokenizer, question, context, length, min(QA_STRIDE, length // 3))


def _max_pieces(config, wanted: int) -> int:
    """`wanted`, or less for an encoder with fewer positions (RoBERTa-style ids start after the padding index)."""
    return min(wanted, getattr(config, "max_position_embeddings", wanted) - 2)


def speed(spec: str, sentences: list[str], repeats: int = 5) -> dict:
    """Time one forward of `sentences` (one batch) through the encoder of `spec`: median ms and sentences/s.

    Uses `time_hub.bench` (`make_batches`, `time_batches`): one warm-up pass, then `repeats` timed passes.
    """
    loaded = load_timed(spec)
    settings = TimingSettings(warmup=1, repeats=repeats)
    batches = make_batches(sentences, loaded.tokenizer, len(sentences), 1 + repeats, loaded.max_length)
    row = time_batches(loaded, batches, settings, None)
    return {
        "model": spec,
        "parameters_m": round(loaded.num_parameters / 1e6, 1),
        "ms": round(row["latency_ms"]["median"], 2),
        "sentences_per_s": round(row["sentences_per_s"], 1),
    }


def published_table(bench, model_spec: str | None = None) -> str | None:
    """The published speed/energy table (markdown) from a bench.json dict or path; else from a `bench.json` /
    `bench.md` in the model's local folder or its run's `bench/` folder, or `provenance/bench.json` in its Hub repo."""
    if isinstance(bench, dict):
        return table(bench)
    if bench:
        return table(load_bench(bench))
    if not model_spec:
        return None
    folder = Path(model_spec)
    if folder.is_dir():
        for candidate in (folder / "bench.json", folder.parent / "bench" / "bench.json"):
            if candidate.is_file():
                return table(load_bench(candidate))
        return (folder / "bench.md").read_text(encoding="utf-8") if (folder / "bench.md").is_file() else None
    return _hub_bench(model_spec)


@functools.lru_cache(maxsize=16)
def _hub_bench(repo_id: str) -> str | None:
    try:
        from huggingface_hub import hf_hub_download

        return table(load_bench(hf_hub_download(repo_id, "provenance/bench.json")))
    except Exception:  # no such file, offline, private: the tab just says there is no table
        return None
