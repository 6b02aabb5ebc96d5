"""The probes of the crash- and input-safety issue, each with its behaviour now, verbatim: one `error:` line naming the
file, line or key, exit 2, no traceback, nothing written. (Kills during a checkpoint write: test_checkpoint_kill.py;
damaged checkpoints in `select`: test_select.py; publishing without a token: test_publish.py.)"""

import json
import random
from pathlib import Path

import pytest
from transformers import AutoModelForTokenClassification, AutoTokenizer

from time_hub.cli import main

ROOT = "recipes/distill/cpu/s.yaml"
# One Danish sentence of three words, for hand-broken trees.
WORDS = [("1", "Hun", "hun", "PRON"), ("2", "læser", "læse", "VERB"), ("3", "bøger", "bog", "NOUN")]


def conllu(heads: list[int]) -> str:
    rels = ["root" if h == 0 else "dep" for h in heads]
    lines = [f"{i}\t{f}\t{lemma}\t{u}\t_\t_\t{h}\t{r}\t_\t_" for (i, f, lemma, u), h, r in zip(WORDS, heads, rels)]
    return "# sent_id = probe\n" + "\n".join(lines) + "\n\n"


def run_cli(argv, capsys, monkeypatch) -> str:
    """The one error line of a command that must refuse its input."""
    monkeypatch.delenv("TIME_HUB_DEBUG", raising=False)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, err
    return errors[0]


@pytest.mark.parametrize(
    ("heads", "message"),
    [
        ([2, 3, 2], "sentence has 0 roots (words with HEAD 0: none); a tree has one"),
        ([0, 3, 2], "the HEAD column contains a cycle (2 -> 3)"),
        ([0, 1, 0], "sentence has 2 roots (words with HEAD 0: 1, 3); a tree has one"),
    ],
)
def test_training_refuses_what_evaluation_refuses(heads, message, tmp_path, tiny_bert_dir, capsys, monkeypatch):
    train, out = tmp_path / "train.conllu", tmp_path / "out"
    train.write_text(conllu(heads), encoding="utf-8")
    argv = ["finetune", "--task", "ud", "--model", str(tiny_bert_dir), "--train", str(train), "--output_dir", str(out)]
    line = run_cli(argv, capsys, monkeypatch)
    assert line.startswith(f"error: {train}:") and line.endswith(message), line
    assert not out.exists()


def test_empty_treebank(tmp_path, tiny_bert_dir, capsys, monkeypatch):
    train, out = tmp_path / "empty.conllu", tmp_path / "out"
    train.write_text("")
    argv = ["finetune", "--task", "ud", "--model", str(tiny_bert_dir), "--train", str(train), "--output_dir", str(out)]
    assert run_cli(argv, capsys, monkeypatch) == f"error: {train}: no sentences (the file is empty)"
    assert not out.exists()


def test_ner_labels_the_model_does_not_have(tmp_path, tiny_bert_dir, capsys, monkeypatch):
    model_dir, data = tmp_path / "tagger", tmp_path / "dev.iob2"
    labels = ["O", "B-PER", "I-PER"]
    model = AutoModelForTokenClassification.from_pretrained(
        tiny_bert_dir, id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)}
    )
    model.save_pretrained(model_dir)
    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(model_dir)
    data.write_text("1\tPeter\tB-PER\n2\tbor\tO\n\n1\tI\tO\n2\tAarhus\tB-FOO\n\n", encoding="utf-8")
    line = run_cli(["evaluate", "--task", "ner", "--model", str(model_dir), "--data", str(data)], capsys, monkeypatch)
    assert (
        line == f"error: {data}:4: entity type FOO of {data} is not a label of the model {model_dir} (it knows PER)"
    )  # the sentence's first line


def test_binary_corpus_is_refused_before_any_model_loads(tmp_path, shared, capsys, monkeypatch):
    corpus, out = tmp_path / "random.bin", tmp_path / "out"
    corpus.write_bytes(bytes(random.Random(0).randrange(256) for _ in range(100_000)))
    heldout = shared / "data" / "text" / "da.txt"
    argv = ["distill", "--config", ROOT, "--train_files", f"[{corpus}]", "--validation_files", f"[{heldout}]"]
    line = run_cli([*argv, "--validation_holdout_lines", "0", "--output_dir", str(out)], capsys, monkeypatch)
    assert line.startswith(f"error: {corpus}: ") and "usable tokens of training text (after skipping" in line
    assert line.endswith("undecodable lines), fewer than min_train_tokens=1000: is it a text file in UTF-8?")
    assert not out.exists()


def test_missing_corpus_is_named_before_any_model_loads(tmp_path, capsys, monkeypatch):
    missing, out = tmp_path / "missing.txt", tmp_path / "out"
    argv = ["distill", "--config", ROOT, "--train_files", f"[{missing}]", "--output_dir", str(out)]
    line = run_cli(argv, capsys, monkeypatch)
    base = "recipes/distill/cpu/base.yaml"  # where the other CorpusArguments keys come from
    assert line == f"error: {base} / the command line: CorpusArguments: {missing}: no such file (train_files)"
    assert not out.exists()


def test_negative_answer_start(tmp_path, tiny_bert_dir, capsys, monkeypatch):
    context = "Aarhus er en by. Aarhus"
    squad = {"data": [{"title": "t", "paragraphs": [{"context": context, "qas": [
        {"id": "q1", "question": "Hvilken by?", "answers": [{"text": "Aarhus", "answer_start": -6}]}]}]}]}  # fmt: skip
    data, out = tmp_path / "squad.json", tmp_path / "out"
    data.write_text(json.dumps(squad), encoding="utf-8")
    assert context[-6:] == "Aarhus"  # a negative start that slices onto the answer text
    argv = ["finetune", "--task", "qa", "--model", str(tiny_bert_dir), "--train", str(data), "--output_dir", str(out)]
    line = run_cli(argv, capsys, monkeypatch)
    answer = "data[0].paragraphs[0].qas[0].answers[0]"
    assert line == f"error: {data}: {answer}: text 'Aarhus' is not at answer_start -6 of the context"
    assert not out.exists()


def test_validation_ranges(tmp_path, capsys, monkeypatch):
    recipe = tmp_path / "distill" / "lr.yaml"  # the folder says what kind of recipe it is
    recipe.parent.mkdir()
    recipe.write_text(f"defaults: {Path(ROOT).resolve().parent / 'base.yaml'}\nlearning_rate: -1.0e-3\n")
    monkeypatch.delenv("TIME_HUB_DEBUG", raising=False)
    assert main(["recipes", "validate", str(recipe)]) == 1  # a verdict on the recipe, not a bad command line
    assert f"{recipe}: key 'learning_rate': must be > 0, got -0.001" in capsys.readouterr().out
    line = run_cli(["distill", "--config", ROOT, "--learning_rate", "-1e-3"], capsys, monkeypatch)
    assert line == "error: the command line: key 'learning_rate': must be > 0, got -0.001"


def test_prune_without_corpus(tmp_path, tiny_bert_dir, capsys, monkeypatch):
    argv = ["prune", str(tiny_bert_dir), "--output_dir", str(tmp_path / "out"), "--layers", "first-1"]
    assert run_cli(argv, capsys, monkeypatch) == "error: the command line: missing required key(s) 'corpus'"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bench", "../nonexistent"], "error: the command line: BenchArguments: ../nonexistent: no such model folder"),
        (
            ["finetune", "--task", "ud", "--model", "not a/model id", "--train", "x.conllu", "--output_dir", "o"],
            "error: the command line: key 'model': not a/model id: neither a model folder nor a Hub model id "
            "(name or namespace/name)",
        ),
    ],
)  # fmt: skip
def test_models_that_cannot_exist(argv, message, capsys, monkeypatch):
    assert run_cli(argv, capsys, monkeypatch) == message
