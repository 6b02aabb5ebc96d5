"""Soft committees: `time-hub finetune --committee N` and committee folders in `time-hub evaluate`."""

import json

import pytest
import torch
from transformers import (
    AutoModelForQuestionAnswering,
    AutoModelForTokenClassification,
    AutoTokenizer,
    BertConfig,
    BertModel,
    TrainingArguments,
)

from time_hub.cli import main as cli_main
from time_hub.tasks import commands, committee, ud
from time_hub.tasks.conllu import read_conllu, write_conllu
from time_hub.tasks.results import TaskResults
from time_hub.tasks.ud_model import UDCollator, UDModel, encode_sentences, predict


@pytest.fixture(scope="module")
def members(tmp_path_factory, tokenizer):
    """Two tiny encoders with different random weights and the shared tokenizer: `root/member-{i}`."""
    root = tmp_path_factory.mktemp("members")
    for i in range(2):
        torch.manual_seed(100 + i)
        config = BertConfig(
            vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
            intermediate_size=64, max_position_embeddings=128, pad_token_id=tokenizer.pad_token_id,
        )  # fmt: skip
        BertModel(config, add_pooling_layer=False).save_pretrained(root / f"member-{i}")
        tokenizer.save_pretrained(root / f"member-{i}")
    return root


def test_member_sources():
    assert committee.member_sources("runs/c/member-{i}/best", 2) == ["runs/c/member-0/best", "runs/c/member-1/best"]
    with pytest.raises(ValueError, match=r"needs the member index \{i\}"):
        committee.member_sources("runs/c/member-0", 2)
    with pytest.raises(ValueError, match="committee must be >= 1"):
        committee.member_sources("m-{i}", 0)


def test_committee_without_index_is_one_clear_error(capsys, tmp_path):
    argv = ["--task", "ner", "--model", "runs/student", "--train", "t.iob2", "--committee", "2",
            "--output_dir", str(tmp_path / "out")]  # fmt: skip
    assert cli_main(["finetune", *argv]) == 2
    assert "needs the member index {i}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_ner_committee_from_the_command_line(members, shared, tmp_path, capsys):
    blocks = (shared / "data" / "ner" / "da" / "dev.iob2").read_text(encoding="utf-8").split("\n\n")
    train, dev = tmp_path / "train.iob2", tmp_path / "dev.iob2"
    train.write_text("\n\n".join(blocks[:48]) + "\n")
    dev.write_text("\n\n".join(blocks[48:72]) + "\n")
    out = tmp_path / "committee"
    argv = ["--task", "ner", "--model", str(members / "member-{i}"), "--committee", "2", "--train", str(train),
            "--dev", str(dev), "--output_dir", str(out), "--max_steps", "3", "--eval_steps", "3", "--save_steps", "3",
            "--eval_strategy", "steps", "--learning_rate", "1e-3", "--use_cpu", "true", "--report_to", "none",
            "--seed", "5"]  # fmt: skip
    assert commands.finetune_main(argv) == 0
    config = json.loads((out / committee.COMMITTEE_FILE).read_text())
    assert [m["folder"] for m in config["members"]] == ["member-0", "member-1"]
    assert [m["seed"] for m in config["members"]] == [5, 6] and config["task"] == "ner"
    assert [m["source"] for m in config["members"]] == [str(members / f"member-{i}") for i in range(2)]
    results = TaskResults.load(out / "results.json")
    assert [m["f1"] for m in results.extra["members"]] == [
        TaskResults.load(out / f"member-{i}" / "results.json").metrics["f1"] for i in range(2)
    ]
    single = AutoModelForTokenClassification.from_pretrained(out / "member-0")
    assert results.num_parameters == 2 * single.num_parameters()

    # time-hub evaluate scores the committee folder the same way
    capsys.readouterr()
    assert commands.evaluate_main(["--task", "ner", "--model", str(out), "--data", str(dev)]) == 0
    assert "ner dev: precision" in capsys.readouterr().out

    # the committee's logits are the mean of its members', run one after another or on threads
    tokenizer = AutoTokenizer.from_pretrained(out)
    batch = tokenizer(["Kjeld bor i København .", "Hej"], return_tensors="pt", padding=True)
    loaded = [AutoModelForTokenClassification.from_pretrained(out / f"member-{i}").eval() for i in range(2)]
    with torch.no_grad():
        expected = (loaded[0](**batch).logits + loaded[1](**batch).logits) / 2
        for parallel in (False, True):
            model = committee.LogitsCommittee(loaded, parallel=parallel)
            logits = model(**batch).logits
            torch.testing.assert_close(logits, expected)
            assert not logits.requires_grad  # no_grad reaches the members' threads (grad mode is thread-local)
        assert not torch.allclose(loaded[0](**batch).logits, expected)


def test_committee_members_must_share_labels(members):
    a = AutoModelForTokenClassification.from_pretrained(members / "member-0", num_labels=3)
    b = AutoModelForTokenClassification.from_pretrained(members / "member-1", num_labels=5)
    with pytest.raises(ValueError, match="committee member 1 has other labels"):
        committee.LogitsCommittee([a, b])


def test_qa_committee_averages_start_and_end_logits(members, tokenizer):
    readers = [AutoModelForQuestionAnswering.from_pretrained(members / f"member-{i}").eval() for i in range(2)]
    batch = tokenizer(["Hvor bor Kjeld?"], ["Kjeld bor i København."], return_tensors="pt")
    with torch.no_grad():
        out = committee.LogitsCommittee(readers)(**batch)
        parts = [r(**batch) for r in readers]
    torch.testing.assert_close(out.start_logits, (parts[0].start_logits + parts[1].start_logits) / 2)
    torch.testing.assert_close(out.end_logits, (parts[0].end_logits + parts[1].end_logits) / 2)


def test_ud_committee(members, shared, tmp_path, tokenizer):
    sentences = read_conllu(shared / "data" / "ud" / "da" / "dev.conllu")
    write_conllu(tmp_path / "train.conllu", sentences[:32])
    write_conllu(tmp_path / "eval.conllu", sentences[32:48])
    args = TrainingArguments(
        output_dir=str(tmp_path / "unused"), num_train_epochs=1, per_device_train_batch_size=16,
        learning_rate=2e-3, use_cpu=True, report_to="none", seed=3, disable_tqdm=True,
    )  # fmt: skip
    out = tmp_path / "committee"
    results = committee.finetune(
        "ud", ud, str(members / "member-{i}"), 2, str(tmp_path / "train.conllu"), str(tmp_path / "eval.conllu"),
        str(out), args, max_length=64,
    )  # fmt: skip
    assert results.task == "ud" and len(results.extra["members"]) == 2 and "LAS" in results.metrics
    model, _ = ud.load_ud_model(out)
    assert isinstance(model, committee.UDCommittee) and len(model.members) == 2
    assert not any(m.training for m in model.modules())  # loaded for prediction: no dropout anywhere

    # averaged scores: tags and arcs are the members' mean; a committee of one model's copies predicts as it does
    member = UDModel.from_pretrained(out / "member-0")
    features, _ = encode_sentences(sentences[32:36], tokenizer, 64)
    batch = UDCollator(tokenizer.pad_token_id)(features)
    with torch.no_grad():
        words = model.word_vectors(batch["input_ids"], batch["attention_mask"], batch["word_starts"])
        averaged = model.predict_logits(words, batch["word_mask"])
        each = [m.predict_logits(w, batch["word_mask"]) for m, w in zip(model.members, words)]
    for name in ("upos", "arcs"):
        torch.testing.assert_close(averaged[name], (each[0][name] + each[1][name]) / 2)
    alone, _ = predict(member, tokenizer, sentences[32:48])
    twins, _ = predict(committee.UDCommittee([member, member]), tokenizer, sentences[32:48])
    assert [s.words for s in twins] == [s.words for s in alone]
