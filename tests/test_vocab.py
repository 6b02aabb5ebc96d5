"""Vocabulary trimming on a tiny BERT with the real shared tokenizers and real Danish text."""

import json
import shutil

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoTokenizer, BertConfig, BertModel

from time_hub.cli import main as cli_main
from time_hub.compress.vocab import trim_vocabulary

SPECIALS = ("bos_token_id", "pad_token_id", "eos_token_id", "unk_token_id", "mask_token_id", "cls_token_id")


@pytest.fixture(scope="module")
def trimmed(tmp_path_factory, tiny_bert_dir, da_lines):
    out = tmp_path_factory.mktemp("trimmed")
    report = trim_vocabulary(tiny_bert_dir, da_lines[:3000], out, coverage=0.999, heldout=da_lines[-300:])
    return out, report


def test_trimmed_folder_loads_and_keeps_special_ids(trimmed, tiny_bert_dir, tokenizer):
    out, report = trimmed
    new_to_old = json.loads((out / "vocab_map.json").read_text())["new_to_old"]
    model, new_tok = AutoModel.from_pretrained(out, add_pooling_layer=False), AutoTokenizer.from_pretrained(out)
    config = AutoConfig.from_pretrained(out)
    assert len(new_tok) == config.vocab_size == len(new_to_old) == report["vocab_size"]["after"]
    assert model.get_input_embeddings().weight.shape[0] == len(new_to_old) < len(tokenizer)
    for name in SPECIALS:
        assert new_to_old[getattr(new_tok, name)] == getattr(tokenizer, name), name
    for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
        assert new_to_old[getattr(config, name)] == getattr(AutoConfig.from_pretrained(tiny_bert_dir), name)
    assert new_tok.mask_token_id == len(new_tok) - 1  # the XLM-R layout: <mask> stays last
    p = report["parameters"]
    assert p["after"]["total"] == model.num_parameters() and p["after"]["total"] < p["before"]["total"]
    assert p["before"]["total"] - p["after"]["total"] == p["before"]["embeddings"] - p["after"]["embeddings"]
    assert report["disk_bytes"]["weights"]["after"] < report["disk_bytes"]["weights"]["before"]


def test_vocab_map_traces_every_piece(trimmed, tokenizer):
    out, report = trimmed
    vocab_map = json.loads((out / "vocab_map.json").read_text())
    new_to_old, new_tok = vocab_map["new_to_old"], AutoTokenizer.from_pretrained(out)
    assert vocab_map["kept"] == len(new_to_old) and new_to_old == sorted(set(new_to_old))
    assert vocab_map["coverage"] >= 0.999 and vocab_map["criteria"]["coverage"] == 0.999
    old_pieces, new_pieces = (
        tokenizer.convert_ids_to_tokens(new_to_old),
        new_tok.convert_ids_to_tokens(range(len(new_tok))),
    )
    assert old_pieces == new_pieces
    singles = [p for p in tokenizer.convert_ids_to_tokens(range(len(tokenizer))) if len(p.removeprefix("▁")) <= 1]
    assert set(singles) <= set(new_pieces)  # every single character survives: no new <unk>
    assert report["check"]["unk_rate"]["after"] <= report["check"]["unk_rate"]["before"] + 1e-4


def test_identical_tokenization_and_hidden_states_where_pieces_kept(trimmed, tiny_bert_dir, tokenizer, da_lines):
    out, report = trimmed
    new_to_old = json.loads((out / "vocab_map.json").read_text())["new_to_old"]
    kept, new_tok = set(new_to_old), AutoTokenizer.from_pretrained(out)
    heldout = da_lines[-300:]
    covered = [s for s in heldout if set(tokenizer(s)["input_ids"]) <= kept]
    assert len(covered) > 50
    for sentence in covered:
        assert [new_to_old[i] for i in new_tok(sentence)["input_ids"]] == tokenizer(sentence)["input_ids"], sentence
    old_model = AutoModel.from_pretrained(tiny_bert_dir, add_pooling_layer=False).eval()
    new_model = AutoModel.from_pretrained(out, add_pooling_layer=False).eval()
    a, b = (
        tokenizer(covered[:8], padding=True, return_tensors="pt"),
        new_tok(covered[:8], padding=True, return_tensors="pt"),
    )
    assert torch.equal(a["input_ids"], torch.tensor(new_to_old)[b["input_ids"]])
    with torch.inference_mode():
        diff = (old_model(**a).last_hidden_state - new_model(**b).last_hidden_state).abs()
    assert diff[a["attention_mask"].bool()].max() < 1e-5
    check = report["check"]
    assert check["on"] == "heldout" and check["hidden_sentences"] > 0 and check["hidden_max_abs_diff"] < 1e-5
    assert check["identical_share"] == pytest.approx(len(covered) / len(heldout))  # the rest re-split
    assert check["identical_share"] < 1


def test_coverage_and_size_criteria(tmp_path, tiny_bert_dir, da_lines):
    texts = da_lines[:800]
    sizes = [
        trim_vocabulary(tiny_bert_dir, texts, tmp_path / str(c), coverage=c, check_sentences=0)["vocab_size"]["after"]
        for c in (0.9, 0.99, 1.0)
    ]
    assert sizes[0] < sizes[1] < sizes[2]
    report = trim_vocabulary(tiny_bert_dir, texts, tmp_path / "size", size=sizes[2] + 100, check_sentences=0)
    assert report["vocab_size"]["after"] == sizes[2] + 100 and report["coverage"] == 1.0
    assert report["criteria"]["filled_by_score"] == 100


def test_bad_inputs_name_the_problem(tmp_path, tiny_bert_dir, da_lines, capsys):
    with pytest.raises(ValueError, match="corpus is empty"):
        trim_vocabulary(tiny_bert_dir, ["", "  "], tmp_path / "a", coverage=0.99)
    with pytest.raises(ValueError, match="exactly one of size or coverage"):
        trim_vocabulary(tiny_bert_dir, da_lines[:10], tmp_path / "b", size=5000, coverage=0.99)
    with pytest.raises(ValueError, match="exactly one of size or coverage"):
        trim_vocabulary(tiny_bert_dir, da_lines[:10], tmp_path / "c")
    with pytest.raises(ValueError, match="smaller than the .* pieces that must be kept"):
        trim_vocabulary(tiny_bert_dir, da_lines[:10], tmp_path / "d", size=100)
    corpus = tmp_path / "da.txt"
    corpus.write_text("\n".join(da_lines[:10]), encoding="utf-8")
    argv = [str(tiny_bert_dir), "--corpus", str(corpus), "--output_dir", str(tmp_path / "e")]
    assert cli_main(["trim-vocab", *argv, "--size", "5000", "--coverage", "0.9"]) == 2
    assert cli_main(["trim-vocab", *argv, "--coverage", "1.5"]) == 2
    assert cli_main(["trim-vocab", *argv, "--size", "10"]) == 2
    assert cli_main(["trim-vocab", *argv[:2], str(tmp_path / "missing.txt"), *argv[3:], "--size", "5000"]) == 2
    err = capsys.readouterr().err
    assert "exactly one of size or coverage" in err and "coverage must be in (0, 1]" in err
    assert "must be kept" in err and "missing.txt" in err


def test_command_reads_several_files(tmp_path, tiny_bert_dir, da_lines, capsys):
    files = [tmp_path / "a.txt", tmp_path / "b.txt", tmp_path / "held.txt"]
    for f, lines in zip(files, (da_lines[:200], da_lines[200:400], da_lines[-50:])):
        f.write_text("\n".join(lines), encoding="utf-8")
    argv = [str(tiny_bert_dir), "--corpus", str(files[0]), str(files[1]), "--heldout", str(files[2])]
    assert cli_main(["trim-vocab", *argv, "--output_dir", str(tmp_path / "out"), "--coverage", "0.99"]) == 0
    report = json.loads((tmp_path / "out" / "trim_report.json").read_text())
    assert report["corpus"]["files"] == [str(files[0]), str(files[1])] and report["corpus"]["lines"] == 400
    assert report["check"]["sentences"] == 50 and "wrote" in capsys.readouterr().out


def test_xlmr_sentencepiece_is_trimmed_consistently(tmp_path, shared, da_lines):
    """The full XLM-R tokenizer with its SentencePiece file: both trimmed, in the fairseq id layout (spm id + 1)."""
    import sentencepiece

    source = tmp_path / "xlmr-tiny"
    shutil.copytree(shared / "tokenizers" / "xlm-roberta", source, copy_function=shutil.copyfile)
    tok = AutoTokenizer.from_pretrained(source)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tok), hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=16, max_position_embeddings=64, pad_token_id=tok.pad_token_id)  # fmt: skip
    BertModel(config, add_pooling_layer=False).save_pretrained(source)
    out = tmp_path / "trimmed"
    report = trim_vocabulary(source, da_lines[:500], out, size=12000, chars="scripts", heldout=da_lines[-100:])
    assert report["criteria"]["required"] < 3000  # single characters of the Latin script and non-letters only
    new_tok = AutoTokenizer.from_pretrained(out)
    assert len(new_tok) == 12000 and new_tok.mask_token_id == 11999
    spm = sentencepiece.SentencePieceProcessor(model_file=str(out / "sentencepiece.bpe.model"))
    assert spm.get_piece_size() == 12000 - 2  # no <pad> and <mask> in SentencePiece
    assert all(new_tok.convert_tokens_to_ids(spm.id_to_piece(i)) == i + 1 for i in range(3, spm.get_piece_size()))
    assert report["sentencepiece"]["same_pieces_as_tokenizer_json"]["after"] == 1.0
    assert report["check"]["hidden_max_abs_diff"] < 1e-5 and report["check"]["unk_rate"]["after"] < 1e-3
