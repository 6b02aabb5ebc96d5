import logging
import random
from collections import Counter

import pytest

from time_hub.distill.data import CorpusArguments, build_corpus, build_validation, read_lines, token_sequences


def test_read_lines_skips_and_counts_empty_and_malformed(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes("første linje\n\n   \n".encode() + b"bad \xff\xfe bytes\n" + b"sidste\n")
    skipped = Counter()
    assert list(read_lines(str(path), skipped)) == ["første linje", "sidste"]
    assert skipped == {"empty": 2, "malformed": 1}


def test_chunking_and_packing(tokenizer):
    lines = ["Det er en meget lang sætning om vejret i Danmark i dag " * 6, "Kort.", "Også kort."]
    ids = tokenizer(lines, add_special_tokens=False)["input_ids"]
    bos, eos = tokenizer.cls_token_id, tokenizer.sep_token_id

    chunked = list(token_sequences(lines, tokenizer, max_seq_length=16, packing=False))
    assert all(len(s) <= 16 and s[0] == bos and s[-1] == eos for s in chunked)
    assert [t for s in chunked for t in s[1:-1]] == [t for x in ids for t in x]  # nothing lost, nothing added

    packed = list(token_sequences(lines, tokenizer, max_seq_length=16, packing=True, batch=2))
    assert all(len(s) == 16 for s in packed[:-1]) and len(packed[-1]) <= 16
    body = [t for s in packed for t in s[1:-1]]
    assert body == ids[0] + [eos] + ids[1] + [eos] + ids[2]  # lines joined by </s>
    assert len(packed) < len(chunked)


def test_holdout_lines_are_not_trained_on_and_counts_are_logged(tmp_path, tokenizer, da_lines, caplog):
    path = tmp_path / "da.txt"
    path.write_text("\n".join(da_lines[:60]) + "\n\n\n", encoding="utf-8")
    args = CorpusArguments(train_files=[str(path)], validation_holdout_lines=10, max_seq_length=64, packing=False)
    with caplog.at_level(logging.INFO):
        train, heldout = build_corpus(args, tokenizer)
    assert "skipped 2 empty and 0 malformed lines" in caplog.text
    decoded_train = tokenizer.decode([t for s in train["input_ids"] for t in s])
    decoded_heldout = tokenizer.decode([t for s in heldout["input_ids"] for t in s])
    assert da_lines[0][:30] in decoded_heldout and da_lines[0][:30] not in decoded_train
    assert da_lines[59][:30] in decoded_train
    assert len(build_validation(args, tokenizer)) == len(heldout)


def test_shards_split_the_training_lines_and_share_the_held_out_text(tmp_path, tokenizer, da_lines):
    path = tmp_path / "da.txt"
    path.write_text("\n".join(da_lines[:40]) + "\n", encoding="utf-8")
    common = dict(train_files=[str(path)], validation_holdout_lines=4, max_seq_length=512, packing=False)
    common["min_train_tokens"] = 100  # each shard holds a third of 36 lines
    shards = [build_corpus(CorpusArguments(**common, num_shards=3, shard_index=i), tokenizer) for i in range(3)]
    texts = [[tokenizer.decode(s[1:-1]) for s in train["input_ids"]] for train, _ in shards]
    assert [len(t) for t in texts] == [12, 12, 12]  # lines 4..39, every third
    assert texts[1][0] == tokenizer.decode(tokenizer(da_lines[5], add_special_tokens=False)["input_ids"])
    assert all(held["input_ids"] == shards[0][1]["input_ids"] for _, held in shards)
    with pytest.raises(ValueError, match="0 <= shard_index < num_shards"):
        CorpusArguments(**common, num_shards=2, shard_index=2)


def test_unusable_training_text_is_refused_with_a_count(tmp_path, tokenizer, da_lines):
    binary = tmp_path / "random.bin"
    binary.write_bytes(bytes(random.Random(0).randrange(256) for _ in range(100_000)))
    args = CorpusArguments(train_files=[str(binary)], validation_holdout_lines=2)
    with pytest.raises(ValueError, match=r"random.bin: \d+ usable tokens .* \d+ undecodable lines\), fewer than "):
        build_corpus(args, tokenizer)
    short = tmp_path / "short.txt"
    short.write_text("\n".join(da_lines[:12]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="min_train_tokens=1000"):
        build_corpus(CorpusArguments(train_files=[str(short)], validation_holdout_lines=2), tokenizer)
    train, _ = build_corpus(
        CorpusArguments(train_files=[str(short)], validation_holdout_lines=2, min_train_tokens=10), tokenizer
    )
    assert len(train) > 0


def test_corpus_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="set train_files"):
        CorpusArguments()
    with pytest.raises(ValueError, match="validation_holdout_lines needs train_files"):
        CorpusArguments(dataset_name="uonlp/CulturaX", validation_holdout_lines=5)
    with pytest.raises(ValueError, match="no held-out text"):
        build_validation(CorpusArguments(train_files=[__file__]), tokenizer=None)
    with pytest.raises(ValueError, match=r"missing.txt: no such file \(validation_files\)"):
        CorpusArguments(train_files=[__file__], validation_files=[str(tmp_path / "missing.txt")])
