"""NER: IOB2 reading and repair, subword alignment, seqeval scoring, and short fine-tunes on real Danish data."""

import json
import logging

import pytest
import torch
from transformers import AutoModelForTokenClassification, TrainingArguments, pipeline

from time_hub.cli import main
from time_hub.tasks import ner, silver
from time_hub.tasks.training import TaskTrainer


@pytest.fixture(scope="module")
def da(shared):
    return shared / "data" / "ner" / "da"


def write_slice(source, path, sentences: int):
    """The first `sentences` blank-line-separated blocks of an IOB2 file, unchanged."""
    blocks = source.read_text(encoding="utf-8").split("\n\n")[:sentences]
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return path


def test_read_real_danish_dev(da):
    sentences = ner.read_iob2(da / "dev.iob2")
    assert len(sentences) == 564 and sum(len(s.tokens) for s in sentences) == 10332
    tags = [t for s in sentences for t in s.tags]
    # the README's entity counts for this file
    assert (tags.count("B-PER"), tags.count("B-LOC"), tags.count("B-ORG")) == (166, 107, 106)
    assert sentences[0].source.endswith("dev.iob2:3")  # two comment lines come first
    assert ner.label_list(sentences) == ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]


def test_stray_inside_tags_are_repaired_and_counted(da, caplog):
    with caplog.at_level(logging.WARNING, logger="time_hub.tasks.ner"):
        sentences = ner.read_iob2(da / "train.iob2")
    assert len(sentences) == 4383
    assert "repaired 6 stray I-X tags" in caplog.text and "train.iob2:55941" in caplog.text
    for s in sentences:  # valid IOB2 everywhere after repair
        for previous, tag in zip(["O", *s.tags], s.tags):
            assert not tag.startswith("I-") or previous[2:] == tag[2:]
    with pytest.raises(ValueError, match=r"train\.iob2:55941: I-ORG does not continue an entity"):
        ner.read_iob2(da / "train.iob2", repair=False)


def test_repair_iob2_rules():
    tags = ["I-PER", "I-PER", "O", "I-LOC", "B-ORG", "I-PER"]
    assert ner.repair_iob2(tags, [f"x:{i}" for i in range(6)]) == ["x:0", "x:3", "x:5"]
    assert tags == ["B-PER", "I-PER", "O", "B-LOC", "B-ORG", "B-PER"]
    with pytest.raises(ValueError, match="x:1: invalid IOB2 tag 'B-'"):
        ner.repair_iob2(["O", "B-"], ["x:0", "x:1"])


def test_two_column_format_and_comments(tmp_path):
    path = tmp_path / "plain.iob2"
    path.write_text("# a comment\nKjeld B-PER\nChristensen I-PER\n# O\n\n\n#\tO\nSID B-ORG\n", encoding="utf-8")
    sentences = ner.read_iob2(path)
    assert [s.tokens for s in sentences] == [["Kjeld", "Christensen", "#"], ["#", "SID"]]
    assert [s.tags for s in sentences] == [["B-PER", "I-PER", "O"], ["O", "B-ORG"]]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1\tKjeld\tB-PER\n2\tChristensen\tX-PER\n", r"bad\.iob2:2: invalid IOB2 tag 'X-PER'"),
        ("1\tKjeld\tB-PER\nKjeld Christensen B-PER\n", r"bad\.iob2:2: expected 'ID<TAB>token<TAB>tag"),
        ("1\tKjeld\n", r"bad\.iob2:1: invalid IOB2 tag 'Kjeld'"),
        ("1\t\tO\n", r"bad\.iob2:1: empty token"),
        ("# only comments\n\n", r"bad\.iob2: no sentences"),
    ],
)
def test_malformed_input_names_file_and_line(tmp_path, text, message):
    path = tmp_path / "bad.iob2"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        ner.read_iob2(path)


def test_first_subword_alignment_and_truncation(tokenizer, caplog):
    sentence = ner.NerSentence(
        ["Kjeld", "Christensen", "går", "til", "SID-huset"], ["B-PER", "I-PER", "O", "O", "B-ORG"], "x"
    )
    label2id = {"O": 0, "B-PER": 1, "I-PER": 2, "B-ORG": 3}
    dataset, firsts = ner.encode([sentence], tokenizer, label2id, max_length=64)
    ids, labels = dataset[0]["input_ids"], dataset[0]["labels"]
    word_ids = tokenizer(sentence.tokens, is_split_into_words=True).word_ids()
    for position, word in enumerate(word_ids):
        is_first = word is not None and (position == 0 or word_ids[position - 1] != word)
        assert labels[position] == (label2id[sentence.tags[word]] if is_first else -100)
    assert [word_ids[p] for p in firsts[0]] == [0, 1, 2, 3, 4]
    assert len(ids) > len(sentence.tokens) + 2  # some words split into several subwords

    with caplog.at_level(logging.WARNING, logger="time_hub.tasks.ner"):
        _, firsts = ner.encode([sentence], tokenizer, label2id, max_length=6)
    assert firsts[0][-1] == -1 and "1 of 1 sentences exceed 6 subwords" in caplog.text
    # truncated words are predicted O
    predicted = ner.word_predictions([[1] * 6], firsts, {0: "O", 1: "B-PER"})
    assert predicted[0][-1] == "O" and predicted[0][0] == "B-PER"


def test_entity_scores_by_hand():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    predicted = [["B-PER", "I-PER", "O", "O"], ["B-ORG", "B-LOC"]]
    scores = ner.entity_scores(gold, predicted)
    # entities: gold {PER, LOC, ORG}, predicted {PER, ORG, LOC'}: 2 correct of 3 predicted and of 3 gold
    assert scores["precision"] == pytest.approx(200 / 3)
    assert scores["recall"] == pytest.approx(200 / 3)
    assert scores["f1"] == pytest.approx(200 / 3)
    assert scores["accuracy"] == pytest.approx(100 * 4 / 6)
    # seqeval default (conlleval) mode: a stray predicted I-PER starts an entity, like the reader's repair
    assert ner.entity_scores([["O", "B-PER"]], [["O", "I-PER"]])["f1"] == 100.0
    with pytest.raises(ValueError, match="differ in shape"):
        ner.entity_scores([["O"]], [["O", "O"]])


def test_task_head_gets_its_own_learning_rate(tiny_bert_dir, tmp_path):
    model = AutoModelForTokenClassification.from_pretrained(tiny_bert_dir, num_labels=3)
    args = TrainingArguments(output_dir=str(tmp_path), learning_rate=1e-5, weight_decay=0.01, report_to="none")
    optimizer = TaskTrainer(model=model, args=args, head_learning_rate=1e-3).create_optimizer()
    head = {id(p) for p in model.classifier.parameters()}
    rates = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    assert len(rates) == sum(1 for _ in model.parameters())  # every parameter in exactly one group
    assert {rate for i, rate in rates.items() if i in head} == {1e-3}
    assert {rate for i, rate in rates.items() if i not in head} == {1e-5}
    decays = {id(p): group["weight_decay"] for group in optimizer.param_groups for p in group["params"]}
    assert decays[id(model.classifier.weight)] == 0.01 and decays[id(model.classifier.bias)] == 0.0
    plain = TaskTrainer(model=model, args=args).create_optimizer()
    assert {group["lr"] for group in plain.param_groups} == {1e-5}


def test_finetune_tiny_model_end_to_end(tiny_bert_dir, da, tmp_path):
    train = write_slice(da / "train.iob2", tmp_path / "train.iob2", 120)
    dev = write_slice(da / "dev.iob2", tmp_path / "dev.iob2", 40)
    out = tmp_path / "out"
    args = TrainingArguments(
        output_dir="ignored", max_steps=6, per_device_train_batch_size=16, learning_rate=1e-3, eval_strategy="steps",
        eval_steps=3, save_steps=3, use_cpu=True, report_to="none", seed=1,
    )  # fmt: skip
    results = ner.finetune(str(tiny_bert_dir), str(train), str(dev), str(out), args, max_length=64)

    assert results.task == "ner" and results.split == "dev" and results.examples == 40
    assert set(results.metrics) == {"precision", "recall", "f1", "accuracy"}
    assert all(0 <= v <= 100 for v in results.metrics.values())
    assert results.metrics["accuracy"] > 50  # mostly O: even a barely trained model gets most words right
    assert results.extra["training"]["steps"] == 6 and results.extra["training"]["best_checkpoint"]
    assert (out / "checkpoint-3").is_dir()  # evaluated and saved on the dev schedule
    saved = json.loads((out / "results.json").read_text())
    assert saved["metrics"] == results.metrics

    # the saved folder is a stock token-classification model with its label names
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"]["0"] == "O" and set(config["label2id"]) == set(ner.label_list(ner.read_iob2(train)))
    # conftest's HF_HUB_OFFLINE keeps this local (in transformers 5.23 pipeline(local_files_only=True) is a TypeError)
    tagger = pipeline("token-classification", model=str(out))
    entities = tagger("Kjeld Christensen bor i København.")
    assert isinstance(entities, list) and all(e["entity"] in config["label2id"] for e in entities)

    # evaluate() on the saved folder reproduces the numbers and writes readable predictions
    predictions = tmp_path / "pred.iob2"
    again = ner.evaluate(str(out), str(dev), predictions_file=str(predictions))
    assert again.metrics == pytest.approx(results.metrics)
    predicted = ner.read_iob2(predictions)
    assert [s.tokens for s in predicted] == [s.tokens for s in ner.read_iob2(dev)]


@pytest.fixture(scope="module")
def overfit(tiny_bert_dir, da, tmp_path_factory):
    """A tiny tagger trained 60 steps on 16 training sentences: (its results, its folder)."""
    tmp = tmp_path_factory.mktemp("overfit")
    data = write_slice(da / "train.iob2", tmp / "few.iob2", 16)
    args = TrainingArguments(
        output_dir="ignored", max_steps=60, per_device_train_batch_size=16, learning_rate=3e-3, use_cpu=True,
        report_to="none", seed=0, save_strategy="no",
    )  # fmt: skip
    return ner.finetune(str(tiny_bert_dir), str(data), None, str(tmp / "out"), args, max_length=64), tmp / "out"


def test_tiny_model_overfits_a_few_sentences(overfit):
    """Labels reach the right subwords: a tiny model memorises 16 sentences (all-O predictions would score F1 0)."""
    results, _ = overfit
    assert results.split == "train" and results.examples == 16
    assert results.metrics["f1"] > 60, results.metrics


def test_ner_silver_data_leaves_out_gold_sentences_and_trains_a_student(
    overfit, tiny_bert_dir, da, shared, tmp_path, capsys
):
    """The teacher tags the words of the text's lines; lines holding a train/dev sentence (compared without
    whitespace: the text is raw, the gold tokenized) are left out and counted; the analysis is made once."""
    _, teacher = overfit
    train = ner.read_iob2(write_slice(da / "train.iob2", tmp_path / "train.iob2", 24))
    dev = ner.read_iob2(write_slice(da / "dev.iob2", tmp_path / "dev.iob2", 8))
    lines = (shared / "data" / "text" / "da.txt").read_text(encoding="utf-8").splitlines()[:10]
    raw = " ".join(dev[3].tokens).replace(" .", ".").replace(" ,", ",")  # detokenized, inside a longer line
    text = tmp_path / "text.txt"
    text.write_text("\n".join([*lines[:5], " ".join(train[0].tokens), *lines[5:], f"Forord: {raw}"]) + "\n")
    output = tmp_path / "silver.iob2"
    sentences = silver.ner_silver_sentences(str(teacher), [str(text)], [*train, *dev], output)
    assert [s.tokens for s in sentences] == [silver.WORD.findall(line) for line in lines if line.strip()]
    assert [s.tokens for s in ner.read_iob2(output)] == [s.tokens for s in sentences]
    assert json.loads(output.with_suffix(".json").read_text())["left_out_lines"] == 2
    labels = json.loads((teacher / "config.json").read_text())["label2id"]
    assert all(tag in labels for s in sentences for tag in s.tags)
    made = output.stat().st_mtime_ns
    argv = ["finetune", "--task", "ner", "--model", str(tiny_bert_dir), "--train", str(tmp_path / "train.iob2"),
            "--dev", str(tmp_path / "dev.iob2"), "--max_steps", "2", "--per_device_train_batch_size", "8",
            "--use_cpu", "true", "--report_to", "none", "--max_length", "64", "--silver_teacher", str(teacher),
            "--silver_text", f"[{text}]", "--silver_file", str(output), "--gold_repeat", "2",
            "--output_dir", str(tmp_path / "student")]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    training = json.loads((tmp_path / "student" / "results.json").read_text())["extra"]["training"]
    assert training["sentences"] == 24 and training["silver"]["sentences"] == len(sentences)
    assert output.stat().st_mtime_ns == made  # the same inputs: the analysis re-used, not made again


@pytest.mark.slow
def test_finetune_me5_small(teacher_dir, da, tmp_path):
    """The real teacher (stored fp16) trains in fp32 and its fine-tuned folder serves a pipeline."""
    train = write_slice(da / "train.iob2", tmp_path / "train.iob2", 48)
    dev = write_slice(da / "dev.iob2", tmp_path / "dev.iob2", 24)
    args = TrainingArguments(
        output_dir="ignored", max_steps=3, per_device_train_batch_size=16, learning_rate=1e-4, use_cpu=True,
        report_to="none", seed=0, save_strategy="no",
    )  # fmt: skip
    out = tmp_path / "out"
    results = ner.finetune(str(teacher_dir), str(train), str(dev), str(out), args, max_length=64)
    assert results.num_parameters > 39_000_000 and results.examples == 24
    assert all(0 <= v <= 100 for v in results.metrics.values())
    tagger = pipeline("token-classification", model=str(out))
    assert next(tagger.model.parameters()).dtype == torch.float32
    assert isinstance(tagger("Kjeld Christensen bor i København."), list)


def test_length_grouped_training_keeps_dev_in_file_order(tiny_bert_dir, da, tmp_path):
    """group_by_length reorders training batches only: the in-training dev F1 (early stopping) is the F1 that
    evaluate() gives the saved model, not a score of predictions misaligned with their words. The tiny model
    memorises 16 sentences that are also its dev set, scored in batches of 4 (which length grouping would reorder)."""
    data = write_slice(da / "train.iob2", tmp_path / "few.iob2", 16)
    args = TrainingArguments(
        output_dir="ignored", max_steps=60, per_device_train_batch_size=16, per_device_eval_batch_size=4,
        learning_rate=3e-3, eval_strategy="steps", eval_steps=60, save_steps=60, use_cpu=True, report_to="none",
        seed=0, train_sampling_strategy="group_by_length",
    )  # fmt: skip
    results = ner.finetune(str(tiny_bert_dir), str(data), str(data), str(tmp_path / "out"), args, max_length=64)
    assert results.metrics["f1"] > 60, results.metrics
    assert results.extra["training"]["best_dev_metric"] == pytest.approx(results.metrics["f1"])
