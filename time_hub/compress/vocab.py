"""`time-hub trim-vocab`: keep only the vocabulary a language's corpus uses (tokenizer + embedding rows).

    time-hub trim-vocab runs/demo-da/best --corpus ../shared/data/text/da.txt --output_dir runs/demo-da/trimmed \
        --coverage 0.999 --heldout heldout-da.txt

A monolingual student of XLM-R keeps 250,002 embedding rows, most of them for other languages' pieces: 82-93 % of
its parameters. The kept set is: the special tokens (and every id the config or post-processor names), the
single-character pieces (`--chars all`, or `scripts`: non-letters, the corpus's characters and main scripts), then
the pieces the source tokenizer produces on the corpus, most frequent first, until `--size` pieces (topped up with
unused pieces by unigram score) or `--coverage` of the corpus tokens. Kept pieces keep their order, so the specials
and `<mask>` of the XLM-R layout keep their places at the ends.

The output folder loads with `from_pretrained`: `tokenizer.json` is the same Unigram model (scores, normalizer,
pre-tokenizer, post-processor, added tokens) over the kept pieces, a trimmed `sentencepiece.bpe.model` where the
source has one, the weights with the vocabulary rows selected (same dtype, no pooler or head added or lost), the
config with `vocab_size` and token ids remapped, `vocab_map.json` (new id -> old id) and `trim_report.json`. A text
whose source pieces were all kept is tokenized identically (Viterbi over a subset that still holds the best path), so
its hidden states are unchanged; other words split into smaller kept pieces, which the report measures.
"""

from __future__ import annotations

import copy
import json
import shutil
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer
from transformers import AutoConfig, AutoModel, AutoTokenizer
from transformers.utils import logging as hf_logging

from time_hub.arguments import parse_command
from time_hub.atomic import write_json

SPM = "sentencepiece.bpe.model"
METASPACE = "\u2581"


@dataclass
class TrimArguments:
    model: str = field(metadata={"help": "model folder with tokenizer.json (Unigram) and model.safetensors"})
    corpus: list[str] = field(metadata={"help": "text files (one sentence a line) whose pieces are kept"})
    output_dir: str = field(metadata={"help": "folder for the trimmed model, tokenizer, vocab_map.json, report"})
    size: int | None = field(default=None, metadata={"help": "vocabulary size to keep (specials included)"})
    coverage: float | None = field(default=None, metadata={"help": "share of corpus tokens to cover, e.g. 0.999"})
    heldout: list[str] | None = field(
        default=None, metadata={"help": "text files for the unk rate, identity and hidden-state checks (else corpus)"}
    )
    chars: Literal["all", "scripts"] = field(
        default="all",
        metadata={"help": "single-character pieces kept: all, or non-letters + the corpus's scripts and characters"},
    )
    check_sentences: int = field(default=64, metadata={"help": "identically tokenized sentences run through both"})

    def __post_init__(self):
        check_criteria(self.size, self.coverage)


def check_criteria(size: int | None, coverage: float | None) -> None:
    if (size is None) == (coverage is None):
        raise ValueError("give exactly one of size or coverage")
    if size is not None and size < 1:
        raise ValueError(f"size must be positive, got {size}")
    if coverage is not None and not 0 < coverage <= 1:
        raise ValueError(f"coverage must be in (0, 1], got {coverage}")


def read_lines(files: list[str]) -> list[str]:
    return [line for f in files for line in Path(f).read_text(encoding="utf-8").splitlines() if line.strip()]


def _script(ch: str) -> str | None:
    """A letter's script, as the first word of its Unicode name (LATIN, GREEK, CJK, HANGUL ...); None otherwise."""
    return unicodedata.name(ch, "?").split()[0] if unicodedata.category(ch).startswith("L") else None


def _walk_processor(processor: dict | None, fn) -> None:
    """Apply `fn` to every token id a post-processor names (Template/Roberta/Bert processing, Sequence)."""
    if not processor:
        return
    for inner in processor.get("processors", []):
        _walk_processor(inner, fn)
    for spec in processor.get("special_tokens", {}).values():
        spec["ids"] = [fn(i) for i in spec["ids"]]
    for key in ("sep", "cls"):
        if key in processor:
            processor[key][1] = fn(processor[key][1])


def required_ids(data: dict, config, counts: np.ndarray, texts: list[str], chars: str) -> set[int]:
    """Ids that must survive whatever the corpus says: specials, named ids, byte fallback and single characters.

    `chars="scripts"` keeps non-letters, the letters of scripts with at least 1 % of the corpus's letters, and any
    character piece the corpus uses: a Danish corpus quoting two Chinese characters should not keep 7,720 CJK rows."""
    model = data["model"]
    ids = {t["id"] for t in data.get("added_tokens", [])} | {model.get("unk_id")}
    ids |= {v for k, v in config.to_dict().items() if k.endswith("_token_id") and isinstance(v, int)}
    _walk_processor(copy.deepcopy(data.get("post_processor")), lambda i: ids.add(i) or i)
    letters = Counter(_script(ch) for line in texts for ch in line) if chars == "scripts" else Counter()
    letters.pop(None, None)
    scripts = {s for s, n in letters.items() if n >= 0.01 * sum(letters.values())} | {None}
    for i, (piece, _) in enumerate(model["vocab"]):
        bare = piece.removeprefix(METASPACE)
        if model.get("byte_fallback") and len(piece) == 6 and piece.startswith("<0x"):
            ids.add(i)
        elif len(bare) <= 1 and piece and (chars == "all" or counts[i] or not bare or _script(bare) in scripts):
            ids.add(i)
    return {i for i in ids if i is not None and 0 <= i < len(model["vocab"])}  # rows past the tokenizer: unusable


def choose(counts: np.ndarray, scores: np.ndarray, required: set[int], size: int | None, coverage: float | None):
    """Kept old ids (sorted) and how many came from each criterion."""
    if size is not None and size < len(required):
        raise ValueError(
            f"size {size} is smaller than the {len(required)} pieces that must be kept (specials + "
            "single characters); use a larger size or --chars scripts"
        )
    order = [int(i) for i in np.lexsort((np.arange(len(counts)), -counts)) if counts[i] > 0 and i not in required]
    kept = set(required)
    if size is not None:
        frequent = order[: size - len(kept)]
        kept |= set(frequent)
        unused = [int(i) for i in np.argsort(-scores, kind="stable") if int(i) not in kept]
        filled = unused[: size - len(kept)]
        kept |= set(filled)
    else:
        covered, total, frequent, filled = counts[list(kept)].sum(), counts.sum(), [], []
        for i in order:
            if covered >= coverage * total:
                break
            frequent.append(i)
            covered += counts[i]
        kept |= set(frequent)
    return sorted(kept), {"required": len(required), "by_frequency": len(frequent), "filled_by_score": len(filled)}


def trim_tokenizer_json(data: dict, new_to_old: list[int]) -> dict:
    """The same tokenizer over the kept pieces: contiguous ids, original scores, remapped unk/added/special ids."""
    old_to_new = {old: new for new, old in enumerate(new_to_old)}
    data = data | {"model": dict(data["model"]), "added_tokens": [dict(t) for t in data.get("added_tokens", [])]}
    data["post_processor"] = copy.deepcopy(data.get("post_processor"))
    model = data["model"]
    model["vocab"] = [model["vocab"][old] for old in new_to_old]
    if model.get("unk_id") is not None:
        model["unk_id"] = old_to_new[model["unk_id"]]
    for token in data["added_tokens"]:
        token["id"] = old_to_new[token["id"]]
    _walk_processor(data.get("post_processor"), old_to_new.__getitem__)
    return data


def trim_sentencepiece(source: Path, target: Path, kept_pieces: set[str]) -> int:
    """Trimmed SentencePiece model: the kept normal pieces in their order, control and unknown pieces always."""
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(source.read_bytes())
    normal = sentencepiece_model_pb2.ModelProto.SentencePiece.NORMAL
    pieces = [p for p in proto.pieces if p.type != normal or p.piece in kept_pieces]
    del proto.pieces[:]
    proto.pieces.extend(pieces)
    proto.trainer_spec.vocab_size = len(pieces)
    target.write_bytes(proto.SerializeToString())
    return len(pieces)


def trim_weights(source: Path, target: Path, rows: int, new_to_old: list[int]) -> dict:
    """Select the vocabulary rows (first dim == vocab size: word embeddings, MLM decoder and bias) of every tensor."""
    files = sorted(source.glob("*.safetensors"))
    if len(files) != 1:
        raise ValueError(f"{source}: expected one model.safetensors, found {len(files)} (sharded/absent unsupported)")
    with safe_open(files[0], "pt") as f:
        metadata = f.metadata()
    tensors, index = load_file(files[0]), torch.tensor(new_to_old)
    before = {"total": sum(t.numel() for t in tensors.values())}
    vocab_rows = [name for name, t in tensors.items() if t.dim() > 0 and t.shape[0] == rows]
    before["embeddings"] = sum(tensors[name].numel() for name in vocab_rows)
    tensors |= {name: tensors[name][index].contiguous() for name in vocab_rows}
    after = {"total": sum(t.numel() for t in tensors.values())}
    after["embeddings"] = sum(tensors[name].numel() for name in vocab_rows)
    save_file(tensors, target / files[0].name, metadata=metadata)
    return {"before": before, "after": after}


def _load(path: Path):
    level, bar = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # a missing pooler is re-initialised in both models; we compare hidden states
    hf_logging.disable_progress_bar()
    try:
        return AutoModel.from_pretrained(path, dtype=torch.float32).eval()
    finally:
        hf_logging.set_verbosity(level)
        if bar:
            hf_logging.enable_progress_bar()


def compare(source: Path, trimmed: Path, new_to_old: list[int], sentences: list[str], check: int) -> dict:
    """Unk rate and length before/after, share tokenized identically, hidden-state difference where identical."""
    old_tok, new_tok = AutoTokenizer.from_pretrained(source), AutoTokenizer.from_pretrained(trimmed)
    old = old_tok(sentences, add_special_tokens=False)["input_ids"]
    new = new_tok(sentences, add_special_tokens=False)["input_ids"]
    same = [s for s, a, b in zip(sentences, old, new) if a == [new_to_old[i] for i in b]]
    n_old, n_new = sum(map(len, old)), sum(map(len, new))
    out = {
        "sentences": len(sentences),
        "tokens": {"before": n_old, "after": n_new},
        "unk_rate": {
            "before": sum(ids.count(old_tok.unk_token_id) for ids in old) / max(n_old, 1),
            "after": sum(ids.count(new_tok.unk_token_id) for ids in new) / max(n_new, 1),
        },
        "identical_share": len(same) / max(len(sentences), 1),
        "hidden_sentences": min(check, len(same)),
        "hidden_max_abs_diff": None,
    }
    if not same or check < 1:
        return out
    old_model, new_model, worst = _load(source), _load(trimmed), 0.0
    mapping = torch.tensor(new_to_old)
    for i in range(0, min(check, len(same)), 16):
        kwargs = dict(padding=True, truncation=True, max_length=128, return_tensors="pt")
        a, b = old_tok(same[i : i + 16], **kwargs), new_tok(same[i : i + 16], **kwargs)
        assert torch.equal(a["input_ids"], mapping[b["input_ids"]]), "identical pieces but different ids"
        with torch.inference_mode():
            ha = old_model(input_ids=a["input_ids"], attention_mask=a["attention_mask"]).last_hidden_state
            hb = new_model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).last_hidden_state
        worst = max(worst, float((ha - hb).abs()[a["attention_mask"].bool()].max()))
    return out | {"hidden_max_abs_diff": worst}


def _spm_agreement(folder: Path, sentences: list[str]) -> float:
    """Share of sentences the SentencePiece file splits into the same pieces as tokenizer.json."""
    import sentencepiece

    spm = sentencepiece.SentencePieceProcessor(model_file=str(folder / SPM))
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    pieces = tok.encode_batch(sentences, add_special_tokens=False)
    return sum(spm.encode(s, out_type=str) == p.tokens for s, p in zip(sentences, pieces)) / max(len(sentences), 1)


def _bytes(folder: Path, *names: str) -> int:
    return sum(f.stat().st_size for name in names for f in folder.glob(name))


def write_tokenizer(source: Path, out: Path, data: dict, new_to_old: list[int]) -> int | None:
    """tokenizer.json, its config files (added-token ids remapped) and SentencePiece; returns SentencePiece's size."""
    old_to_new = {old: new for new, old in enumerate(new_to_old)}
    trimmed = trim_tokenizer_json(data, new_to_old)
    Tokenizer.from_str(json.dumps(trimmed))  # fail here, not at load time, if the JSON is inconsistent
    (out / "tokenizer.json").write_text(json.dumps(trimmed, ensure_ascii=False), encoding="utf-8")
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        if (source / name).is_file():
            shutil.copyfile(source / name, out / name)
    config_file = out / "tokenizer_config.json"
    if config_file.is_file() and "added_tokens_decoder" in (tok_config := json.loads(config_file.read_text())):
        decoder = tok_config["added_tokens_decoder"]
        tok_config["added_tokens_decoder"] = {str(old_to_new[int(k)]): v for k, v in decoder.items()}
        write_json(config_file, tok_config)
    if not (source / SPM).is_file():
        return None
    return trim_sentencepiece(source / SPM, out / SPM, {piece for piece, _ in trimmed["model"]["vocab"]})


def trim_vocabulary(
    model_dir: str | Path,
    texts: list[str],
    output_dir: str | Path,
    size: int | None = None,
    coverage: float | None = None,
    heldout: list[str] | None = None,
    chars: Literal["all", "scripts"] = "all",
    corpus: list[str] | None = None,
    check_sentences: int = 64,
) -> dict:
    """Trim `model_dir` to the pieces `texts` needs (see the module docstring); returns and writes the report.

    `heldout` lines (else `texts`) measure unk rate, identity and hidden states; `corpus` names the files in the
    report and vocab_map.json."""
    check_criteria(size, coverage)
    if chars not in ("all", "scripts"):
        raise ValueError(f"chars must be 'all' or 'scripts', got {chars!r}")
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise ValueError("the corpus is empty: no non-blank lines")
    source, out = Path(model_dir), Path(output_dir)
    if not (source / "tokenizer.json").is_file():
        raise ValueError(f"{source}: no tokenizer.json (a fast tokenizer is needed)")
    data = json.loads((source / "tokenizer.json").read_text(encoding="utf-8"))
    if (kind := data["model"]["type"]) != "Unigram":
        raise ValueError(f"{source}: only Unigram (SentencePiece, XLM-R) tokenizers can be trimmed, not {kind}")
    config, vocab = AutoConfig.from_pretrained(source), data["model"]["vocab"]
    if len(vocab) > config.vocab_size:
        raise ValueError(f"{source}: the tokenizer has {len(vocab)} pieces, the model {config.vocab_size} rows")

    encodings = Tokenizer.from_file(str(source / "tokenizer.json")).encode_batch(texts, add_special_tokens=False)
    counts = np.bincount(np.array([i for e in encodings for i in e.ids], dtype=np.int64), minlength=len(vocab))
    scores = np.array([score for _, score in vocab])
    new_to_old, kinds = choose(counts, scores, required_ids(data, config, counts, texts, chars), size, coverage)
    old_to_new = {old: new for new, old in enumerate(new_to_old)}
    out.mkdir(parents=True, exist_ok=True)
    spm_pieces = write_tokenizer(source, out, data, new_to_old)
    parameters = trim_weights(source, out, config.vocab_size, new_to_old)
    for key, value in config.to_dict().items():
        if key.endswith("_token_id") and isinstance(value, int):
            setattr(config, key, old_to_new.get(value))
    config.vocab_size = len(new_to_old)
    config.save_pretrained(out)

    covered = float(counts[new_to_old].sum() / counts.sum()) if counts.sum() else 1.0
    criteria = {"size": size, "coverage": coverage, "chars": chars, **kinds}
    files = corpus or "texts given to trim_vocabulary"
    write_json(out / "vocab_map.json", {"source": str(source), "kept": len(new_to_old), "new_to_old": new_to_old,
                                        "corpus": files, "coverage": covered, "criteria": criteria})  # fmt: skip
    sentences = [t for t in heldout or [] if t.strip()]
    check = {"on": "heldout" if sentences else "corpus"}
    check |= compare(source, out, new_to_old, sentences or texts, check_sentences)
    if spm_pieces is not None:
        sample = (sentences or texts)[:500]
        agree = {"before": _spm_agreement(source, sample), "after": _spm_agreement(out, sample)}
        spm = {"pieces": spm_pieces, "same_pieces_as_tokenizer_json": agree}
    disk = {"weights": ("*.safetensors",), "tokenizer": ("tokenizer.json", SPM)}
    report = {
        "source": str(source),
        "output_dir": str(out),
        "vocab_size": {"before": len(vocab), "after": len(new_to_old)},
        "parameters": parameters,
        "disk_bytes": {k: {"before": _bytes(source, *v), "after": _bytes(out, *v)} for k, v in disk.items()},
        "corpus": {
            "files": files,
            "lines": len(texts),
            "tokens": int(counts.sum()),
            "distinct_pieces": int((counts > 0).sum()),
        },  # fmt: skip
        "coverage": covered,
        "criteria": criteria,
        "check": check,
        "sentencepiece": spm if spm_pieces is not None else None,
    }
    write_json(out / "trim_report.json", report)
    return report


def _gather_lists(argv: list[str]) -> list[str]:
    """`--corpus a.txt b.txt` -> `--corpus ["a.txt", "b.txt"]` (a YAML list), so several files need no brackets."""
    out, files = [], None
    for arg in argv:
        if files is not None and not arg.startswith("--"):
            files.append(arg)
            continue
        files = [] if arg in ("--corpus", "--heldout") else None
        out += [arg] if files is None else [arg, files]
    return [json.dumps(a) if isinstance(a, list) else a for a in out]


def main(argv: list[str]) -> int:
    description = __doc__.strip().splitlines()[0]
    parsed = parse_command("time-hub trim-vocab", description, (TrimArguments,), _gather_lists(argv), "model")
    if parsed is None:
        return 0
    ((args,), _) = parsed
    report = trim_vocabulary(
        args.model, read_lines(args.corpus), args.output_dir, args.size, args.coverage,
        read_lines(args.heldout) if args.heldout else None, args.chars, args.corpus, args.check_sentences,
    )  # fmt: skip
    p, v, c = report["parameters"], report["vocab_size"], report["check"]
    print(f"vocabulary {v['before']} -> {v['after']}, parameters {p['before']['total']:,} -> {p['after']['total']:,}, "
          f"corpus coverage {report['coverage']:.4f}")  # fmt: skip
    print(f"{c['on']}: unk rate {c['unk_rate']['before']:.5f} -> {c['unk_rate']['after']:.5f}, identical "
          f"{c['identical_share']:.2f}, max |hidden diff| {c['hidden_max_abs_diff']}")  # fmt: skip
    print(f"wrote {Path(args.output_dir) / 'trim_report.json'}")
    return 0
