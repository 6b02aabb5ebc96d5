"""`Pipeline`: raw text -> CoNLL-U sentences (segmentation, tags, lemmas, trees, entities), the Python API of
`time-hub annotate`.

    from time_hub.annotate.pipeline import Pipeline
    nlp = Pipeline.from_pretrained("runs/demo-da/tasks/ud", ner="runs/demo-da/tasks/ner")
    for sentence in nlp(["Hun læser bøger. Han skriver."])[0]:
        print(sentence.to_text())

Models load from folders or Hub ids. The UD model must carry its segmenter (`segmenter/`, trained by
`time-hub finetune --task ud --segmenter_steps N`); a NER tagger (any token-classification folder) is optional and
adds `NER=B-PER`-style tags to each word's MISC. Sentences are batched by length across all the texts of a call.

`onnx="int8"` (or `"fp32"`) runs every encoder with onnxruntime from the `onnx/` folder `time-hub export` writes
beside each model (`time-hub export M --output_dir M/onnx --quantize true` for M = the UD model, its segmenter and
the NER tagger); the UD heads and tree decoding stay in PyTorch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoModelForTokenClassification, AutoTokenizer, PreTrainedTokenizerBase

from time_hub.tasks import segment
from time_hub.tasks.conllu import Sentence, Word
from time_hub.tasks.ner import tag_words, torch_logits
from time_hub.tasks.ud_model import UDModel, predict

logger = logging.getLogger(__name__)


def local_folder(name_or_path: str | Path) -> Path:
    """A model folder: `name_or_path` itself, or the Hub repository of that id (downloaded once, then cached)."""
    path = Path(name_or_path)
    if path.is_dir():
        return path
    if path.exists() or str(name_or_path).count("/") != 1:
        raise FileNotFoundError(f"{name_or_path}: not a model folder (nor a Hub id like 'org/time-da-s-ud')")
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(str(name_or_path)))


ONNX_FILES = {"fp32": "model.onnx", "int8": "model-int8.onnx"}


def onnx_session(model_dir: Path, variant: str, threads: int | None = None):
    """The `time-hub export` ONNX session of `model_dir` (`onnx/` inside it), or one error saying how to make it."""
    from time_hub.bench.models import OnnxEncoder

    if variant not in ONNX_FILES:
        raise ValueError(f"onnx must be one of {list(ONNX_FILES)}, got {variant!r}")
    path = model_dir / "onnx" / ONNX_FILES[variant]
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: run `time-hub export {model_dir} --output_dir {model_dir / 'onnx'} --quantize true`"
        )
    return OnnxEncoder(path, threads)


def sentence_from_tokens(text: str, tokens: list[segment.Token], sent_id: str, newdoc: str | None) -> Sentence:
    """A CoNLL-U sentence of unannotated words (`_` columns; the UD model fills them): `# sent_id`, `# text`, one
    range line per multiword token, `SpaceAfter=No` where the text has no space after a token."""
    lines: list[str | None] = ([f"# newdoc id = {newdoc}"] if newdoc is not None else []) + [
        f"# sent_id = {sent_id}",
        f"# text = {' '.join(text[tokens[0].start : tokens[-1].end].split())}",
    ]
    words: list[Word] = []
    for i, token in enumerate(tokens):
        misc = "_" if token.space_after or i == len(tokens) - 1 else "SpaceAfter=No"
        first = len(words) + 1
        if len(token.words) > 1:
            lines.append(f"{first}-{first + len(token.words) - 1}\t{token.form}\t_\t_\t_\t_\t_\t_\t_\t{misc}")
            misc = "_"
        for form in token.words:
            words.append(Word(len(words) + 1, form, "_", "_", "_", "_", 0, "_", misc=misc))
            lines.append(None)
    return Sentence(lines, words)


def with_misc(word: Word, key: str, value: str) -> Word:
    items = [item for item in word.misc.split("|") if item != "_" and not item.startswith(f"{key}=")]
    word.misc = "|".join(sorted([*items, f"{key}={value}"]))
    return word


class Pipeline:
    """Segmenter -> UD model -> optional NER tagger, over texts (one document each)."""

    def __init__(
        self,
        segmenter: segment.Segmenter,
        ud_model: UDModel,
        ud_tokenizer: PreTrainedTokenizerBase,
        ner: tuple | None = None,  # (logits_fn, tokenizer, config)
        batch_size: int = 32,
    ):
        self.segmenter, self.ud_model, self.ud_tokenizer, self.ner = segmenter, ud_model, ud_tokenizer, ner
        self.batch_size = batch_size

    @staticmethod
    def ud_folder(ud: str | Path) -> Path:
        """The local folder of a UD model that can annotate raw text (it has a segmenter), or one clear error."""
        folder = local_folder(ud)
        if not (folder / segment.FOLDER / "config.json").is_file():
            raise FileNotFoundError(
                f"{ud}: this UD model has no segmenter ({segment.FOLDER}/); fine-tune it with "
                "`time-hub finetune --task ud --segmenter_steps 600` to annotate raw text"
            )
        return folder

    @classmethod
    def from_pretrained(
        cls,
        ud: str | Path,
        ner: str | Path | None = None,
        device: str = "cpu",
        batch_size: int = 32,
        onnx: str | None = None,
    ) -> Pipeline:
        folder = cls.ud_folder(ud)
        threads = torch.get_num_threads()
        segmenter = segment.Segmenter.from_pretrained(folder / segment.FOLDER, device)
        ud_model = UDModel.from_pretrained(folder).to(device).eval()
        if onnx:
            segmenter.logits_fn = onnx_session(folder / segment.FOLDER, onnx, threads)
            ud_model.mixed_states_fn = onnx_session(folder, onnx, threads)
        tagger = None
        if ner is not None:
            ner_folder = local_folder(ner)
            model = AutoModelForTokenClassification.from_pretrained(ner_folder, dtype=torch.float32).to(device).eval()
            logits = onnx_session(ner_folder, onnx, threads) if onnx else torch_logits(model)
            tagger = (logits, AutoTokenizer.from_pretrained(ner_folder), model.config)
        return cls(segmenter, ud_model, AutoTokenizer.from_pretrained(folder), tagger, batch_size)

    def __call__(self, texts: Sequence[str], doc_ids: Sequence[str] | None = None) -> list[list[Sentence]]:
        """Per text, its annotated sentences (`# newdoc id` on each document's first sentence when `doc_ids`)."""
        documents = self.segmenter(texts, self.batch_size)
        sentences, owners = [], []
        for d, (text, document) in enumerate(zip(texts, documents)):
            for s, tokens in enumerate(document):
                name = doc_ids[d] if doc_ids is not None else str(d + 1)
                newdoc = name if doc_ids is not None and s == 0 else None
                sentences.append(sentence_from_tokens(text, tokens, f"{name}-{s + 1}", newdoc))
                owners.append(d)
        if not sentences:
            return [[] for _ in texts]
        annotated, _ = predict(self.ud_model, self.ud_tokenizer, sentences, self.batch_size)
        if self.ner is not None:
            logits_fn, tokenizer, config = self.ner
            order = sorted(range(len(annotated)), key=lambda i: len(annotated[i].words))  # length-bucketed batches
            forms = [annotated[i].forms for i in order]
            tags, _ = tag_words(logits_fn, tokenizer, config, forms, self.batch_size)
            for i, sentence_tags in zip(order, tags):
                for word, tag in zip(annotated[i].words, sentence_tags):
                    with_misc(word, "NER", tag)
        out: list[list[Sentence]] = [[] for _ in texts]
        for owner, sentence in zip(owners, annotated):
            out[owner].append(sentence)
        return out
