"""Distillation corpus: local text files or a streamed Hub dataset, tokenized with the teacher's tokenizer, chunked
or packed to `max_seq_length`; plus the held-out text used for checkpoint selection.

Every line that is skipped (empty, not valid UTF-8, not a string) is counted and the counts are logged.
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset, IterableDataset, load_dataset
from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)


@dataclass
class CorpusArguments:
    """Where the distillation text comes from (recipe keys). Local files win over a Hub dataset."""

    train_files: list[str] | None = field(default=None, metadata={"help": "Local text files, one document a line."})
    dataset_name: str | None = field(
        default=None, metadata={"help": "Hub dataset streamed for training, e.g. uonlp/CulturaX (parquet files)."}
    )
    dataset_config: str | None = field(default=None, metadata={"help": "Its config, e.g. the language code."})
    dataset_split: str = field(default="train", metadata={"help": "Split of dataset_name to stream."})
    text_column: str = field(default="text", metadata={"help": "Column holding the text in Hub datasets."})
    validation_files: list[str] | None = field(default=None, metadata={"help": "Held-out local text files."})
    validation_dataset_name: str | None = field(
        default=None, metadata={"help": "Held-out Hub dataset, e.g. openlanguagedata/flores_plus."}
    )
    validation_dataset_config: str | None = field(default=None, metadata={"help": "Its config, e.g. dan_Latn."})
    validation_dataset_split: str = field(default="dev", metadata={"help": "Split of validation_dataset_name."})
    validation_holdout_lines: int = field(
        default=0, metadata={"help": "Without a validation source: hold out the first N lines of train_files."}
    )
    max_seq_length: int = field(default=128, metadata={"help": "Tokens per sequence, special tokens included."})
    packing: bool = field(default=True, metadata={"help": "Pack short lines into full sequences (split by </s>)."})
    max_validation_sequences: int = field(default=512, metadata={"help": "Cap on held-out sequences."})
    min_train_tokens: int = field(
        default=1000,
        metadata={"help": "Refuse local training text with fewer usable tokens (binary or mis-encoded files)."},
    )
    num_shards: int = field(
        default=1,
        metadata={"help": "Train on every num_shards-th line only (e.g. committee members on disjoint data)."},
    )
    shard_index: int = field(
        default=0, metadata={"help": "Which shard (0-based): lines shard_index, +num_shards, ..."}
    )

    def __post_init__(self):
        if not self.train_files and not self.dataset_name:
            raise ValueError("set train_files (local text) or dataset_name (Hub dataset)")
        for key in ("train_files", "validation_files"):
            for path in getattr(self, key) or ():
                if not Path(path).is_file():
                    raise ValueError(f"{path}: no such file ({key})")
        if self.max_seq_length < 8:
            raise ValueError(f"max_seq_length must be >= 8, got {self.max_seq_length}")
        if self.validation_holdout_lines < 0:
            raise ValueError("validation_holdout_lines must be >= 0")
        if self.validation_holdout_lines and not self.train_files:
            raise ValueError("validation_holdout_lines needs train_files")
        if self.num_shards < 1 or not 0 <= self.shard_index < self.num_shards:
            raise ValueError(f"need 0 <= shard_index < num_shards, got {self.shard_index} and {self.num_shards}")


def read_lines(path: str, skipped: Counter) -> Iterator[str]:
    """Non-empty lines of a UTF-8 text file; empty and undecodable lines are counted in `skipped`."""
    with open(path, "rb") as f:
        for raw in f:
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError:
                skipped["malformed"] += 1
                continue
            if line:
                yield line
            else:
                skipped["empty"] += 1


def hub_texts(name: str, config: str | None, split: str, column: str, skipped: Counter) -> Iterator[str]:
    """Stream texts of a Hub dataset (no full download); non-string or empty texts are counted."""
    try:
        rows = load_dataset(name, config, split=split, streaming=True)
    except ValueError as e:  # a misspelled config or split: say which dataset (the message lists what exists)
        raise ValueError(f"{name}: {' '.join(str(e).split())}") from None
    for row in rows:
        text = row.get(column)
        if not isinstance(text, str):
            skipped["malformed"] += 1
        elif text.strip():
            yield text.strip()
        else:
            skipped["empty"] += 1


def token_sequences(
    texts: Iterable[str], tokenizer: PreTrainedTokenizerBase, max_seq_length: int, packing: bool, batch: int = 256
) -> Iterator[list[int]]:
    """`<s> ... </s>` id sequences of at most `max_seq_length`: long lines are chunked; with packing, consecutive
    lines are concatenated (separated by `</s>`) to fill each sequence."""
    bos, eos = tokenizer.cls_token_id, tokenizer.sep_token_id
    body = max_seq_length - 2
    buffer: list[int] = []
    texts = iter(texts)
    while chunk := list(itertools.islice(texts, batch)):
        for ids in tokenizer(chunk, add_special_tokens=False)["input_ids"]:
            if packing:
                buffer.extend(ids + [eos])
                while len(buffer) >= body:
                    yield [bos, *buffer[:body], eos]
                    buffer = buffer[body:]
            else:
                for start in range(0, len(ids), body):
                    yield [bos, *ids[start : start + body], eos]
    if buffer[:-1]:  # the packed tail, without its trailing separator
        yield [bos, *buffer[:-1], eos]


def _log_skipped(source: str, skipped: Counter) -> None:
    if sum(skipped.values()):
        logger.warning("%s: skipped %d empty and %d malformed lines", source, skipped["empty"], skipped["malformed"])


def _train_lines(args: CorpusArguments, skipped: Counter) -> Iterator[str]:
    return itertools.chain.from_iterable(read_lines(path, skipped) for path in args.train_files or ())


def build_corpus(
    args: CorpusArguments, tokenizer: PreTrainedTokenizerBase
) -> tuple[Dataset | IterableDataset, Dataset]:
    """Train (map-style for local files, streamed for Hub datasets) and held-out datasets of `input_ids`."""
    skipped: Counter = Counter()
    if args.train_files:
        lines = itertools.islice(_train_lines(args, skipped), args.validation_holdout_lines, None)
        lines = itertools.islice(lines, args.shard_index, None, args.num_shards)
        train_ids = list(token_sequences(lines, tokenizer, args.max_seq_length, args.packing))
        _log_skipped(", ".join(args.train_files), skipped)
        tokens = sum(len(ids) - 2 for ids in train_ids)
        if tokens < max(args.min_train_tokens, 1):
            raise ValueError(
                f"{', '.join(args.train_files)}: {tokens} usable tokens of training text (after skipping "
                f"{skipped['empty']} empty and {skipped['malformed']} undecodable lines), fewer than "
                f"min_train_tokens={args.min_train_tokens}: is it a text file in UTF-8?"
            )
        train = Dataset.from_dict({"input_ids": train_ids})
        logger.info("train corpus: %d sequences, %d tokens", len(train_ids), sum(map(len, train_ids)))
    else:

        def stream():
            texts = hub_texts(args.dataset_name, args.dataset_config, args.dataset_split, args.text_column, skipped)
            texts = itertools.islice(texts, args.shard_index, None, args.num_shards)
            for ids in token_sequences(texts, tokenizer, args.max_seq_length, args.packing):
                yield {"input_ids": ids}
            _log_skipped(args.dataset_name, skipped)

        # One row now, so that a gated, missing or misspelled dataset is refused before any model loads.
        probe = hub_texts(args.dataset_name, args.dataset_config, args.dataset_split, args.text_column, Counter())
        if next(probe, None) is None:
            raise ValueError(f"{args.dataset_name} ({args.dataset_config}, {args.dataset_split}): no text rows")
        train = IterableDataset.from_generator(stream)
    return train, build_validation(args, tokenizer)


def build_validation(args: CorpusArguments, tokenizer: PreTrainedTokenizerBase) -> Dataset:
    """Held-out sequences: validation files, else a validation Hub dataset, else the first
    `validation_holdout_lines` lines of the train files (which training skips)."""
    skipped: Counter = Counter()
    if args.validation_files:
        texts = itertools.chain.from_iterable(read_lines(path, skipped) for path in args.validation_files)
        source = ", ".join(args.validation_files)
    elif args.validation_dataset_name:
        texts = hub_texts(
            args.validation_dataset_name,
            args.validation_dataset_config,
            args.validation_dataset_split,
            args.text_column,
            skipped,
        )
        source = args.validation_dataset_name
    elif args.validation_holdout_lines:
        texts = itertools.islice(_train_lines(args, Counter()), args.validation_holdout_lines)
        source = f"first {args.validation_holdout_lines} lines of the train files"
    else:
        raise ValueError("no held-out text: set validation_files, validation_dataset_name or validation_holdout_lines")
    sequences = token_sequences(texts, tokenizer, args.max_seq_length, args.packing)
    ids = list(itertools.islice(sequences, args.max_validation_sequences))
    _log_skipped(source, skipped)
    if not ids:
        raise ValueError(f"the held-out text ({source}) is empty")
    logger.info("held-out corpus (%s): %d sequences", source, len(ids))
    return Dataset.from_dict({"input_ids": ids})
