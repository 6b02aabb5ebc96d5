"""Extractive QA: SQuAD reading and errors, sliding windows, n-best decoding, short fine-tunes on real XQuAD."""

import json
import logging

import numpy as np
import pytest
from transformers import AutoModelForQuestionAnswering, AutoTokenizer, TrainingArguments

from time_hub.tasks import qa


@pytest.fixture(scope="module")
def xquad_en(shared):
    return shared / "data" / "qa" / "xquad" / "xquad.en.json"


@pytest.fixture(scope="module")
def xquad_examples(xquad_en):
    return qa.read_squad(xquad_en)


def small_squad(source, path, articles: int, paragraphs: int = 1, questions: int | None = None):
    """The first paragraphs (and questions) of the first `articles` articles of a SQuAD file."""
    data = json.loads(source.read_text(encoding="utf-8"))
    data["data"] = data["data"][:articles]
    for article in data["data"]:
        article["paragraphs"] = article["paragraphs"][:paragraphs]
        for paragraph in article["paragraphs"]:
            paragraph["qas"] = paragraph["qas"][:questions]
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_read_real_xquad(xquad_examples):
    assert len(xquad_examples) == 1190  # the README's count
    first = xquad_examples[0]
    assert first.id == "56beb4343aeaaa14008c925b" and first.answers == ["308"] and first.answer_starts == [34]
    assert first.context[34:37] == "308"


def test_split_by_article(xquad_en, tmp_path):
    train, dev = qa.split_squad_by_article(xquad_en, 40, tmp_path)
    train_examples, dev_examples = qa.read_squad(train), qa.read_squad(dev)
    assert len(json.loads(train.read_text())["data"]) == 40 and len(json.loads(dev.read_text())["data"]) == 8
    assert len(train_examples) + len(dev_examples) == 1190
    assert not {e.context for e in train_examples} & {e.context for e in dev_examples}
    with pytest.raises(ValueError, match="train_articles must be in 1..47"):
        qa.split_squad_by_article(xquad_en, 48, tmp_path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["data"][0]["paragraphs"][1].pop("context"), r"missing key data\[0\]\.paragraphs\[1\]\.context"),
        (
            lambda d: d["data"][0]["paragraphs"][0]["qas"][2]["answers"][0].update(answer_start="34"),
            r"data\[0\]\.paragraphs\[0\]\.qas\[2\]\.answers\[0\]\.answer_start should be int, got str",
        ),
        (
            lambda d: d["data"][0]["paragraphs"][0]["qas"][0]["answers"][0].update(answer_start=35),
            r"qas\[0\]\.answers\[0\]: text '308' is not at answer_start 35",
        ),
        (
            lambda d: d["data"][1]["paragraphs"][0]["qas"][0].update(id="56beb4343aeaaa14008c925b"),
            r"data\[1\]\.paragraphs\[0\]\.qas\[0\]\.id '56beb4343aeaaa14008c925b' repeats the id of data\[0\]",
        ),
        (lambda d: d.update(data={"x": 1}), r"data should be list, got dict"),
    ],
)
def test_malformed_squad_names_the_key_path(xquad_en, tmp_path, edit, message):
    data = json.loads(xquad_en.read_text(encoding="utf-8"))
    edit(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        qa.read_squad(path)


def test_invalid_json_names_the_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"data": [', encoding="utf-8")
    with pytest.raises(ValueError, match=r"broken\.json: not valid JSON"):
        qa.read_squad(path)


def test_windows_and_answer_positions(xquad_examples, tokenizer):
    features = qa.make_features(xquad_examples, tokenizer, max_length=128, doc_stride=32)
    assert len(features.offsets) > 2 * len(xquad_examples)  # long contexts need several windows
    assert {features.example_index[w] for w in range(len(features.offsets))} == set(range(len(xquad_examples)))
    exact = with_answer = 0
    covered = set()
    for w, (index, offsets) in enumerate(zip(features.example_index, features.offsets)):
        start, end = features.inputs["start_positions"][w], features.inputs["end_positions"][w]
        assert len(features.inputs["input_ids"][w]) <= 128
        if start == 0:  # no (whole) answer in this window: CLS, which is index 0
            assert end == 0 and features.inputs["input_ids"][w][0] == tokenizer.cls_token_id
            continue
        example = xquad_examples[index]
        span = example.context[offsets[start][0] : offsets[end][1]]
        assert example.answers[0] in span and offsets[start] is not None and offsets[end] is not None
        exact += span == example.answers[0]
        with_answer += 1
        covered.add(index)
    assert len(covered) == len(xquad_examples)  # every answer fits in some window
    assert exact / with_answer > 0.95  # the rest differ only where a subword straddles the answer's edge ("(118")


def test_question_too_long_for_a_window_is_skipped(xquad_examples, tokenizer, caplog):
    long = qa.SquadExample("long", "", "Paris is in France.", "where " * 80 + "?", ["France"], [12])
    with caplog.at_level(logging.WARNING, logger="time_hub.tasks.qa"):
        features = qa.make_features([xquad_examples[0], long], tokenizer, max_length=96, doc_stride=32)
    assert set(features.example_index) == {0} and "1 questions are too long" in caplog.text
    with pytest.raises(ValueError, match="doc_stride must be in"):
        qa.make_features([long], tokenizer, max_length=64, doc_stride=60)


def test_decode_picks_the_best_valid_span_over_windows(xquad_examples, tokenizer):
    examples = [e for e in xquad_examples if len(e.context) > 1000][:1]
    features = qa.make_features(examples, tokenizer, max_length=64, doc_stride=16)
    windows = len(features.offsets)
    width = max(len(o) for o in features.offsets) + 5  # batches pad the logits past a window's end
    start_logits = np.full((windows, width), -100.0)
    end_logits = np.full((windows, width), -100.0)
    for w, offsets in enumerate(features.offsets):
        start_logits[w, : len(offsets)] = 0.0
        end_logits[w, : len(offsets)] = 0.0
    answer_window = next(w for w in range(windows) if features.inputs["start_positions"][w] != 0)
    s, e = features.inputs["start_positions"][answer_window], features.inputs["end_positions"][answer_window]
    start_logits[answer_window, s], end_logits[answer_window, e] = 5.0, 5.0
    # higher-scoring but invalid spans elsewhere: inside the question, reversed, too long, in the padding
    other = (answer_window + 1) % windows
    start_logits[other, 1], end_logits[other, 2] = 9.0, 9.0  # question tokens have no context offsets
    context = [i for i, o in enumerate(features.offsets[other]) if o is not None]
    start_logits[other, context[5]], end_logits[other, context[2]] = 8.0, 8.0  # end before start
    start_logits[other, width - 1], end_logits[other, width - 1] = 50.0, 50.0  # padding
    answers = qa.decode_answers(examples, features, start_logits, end_logits, n_best=20, max_answer_length=30)
    offsets = features.offsets[answer_window]
    assert answers == {examples[0].id: examples[0].context[offsets[s][0] : offsets[e][1]]}
    assert examples[0].answers[0] in answers[examples[0].id]
    # a span longer than max_answer_length is never chosen
    short = qa.decode_answers(examples, features, start_logits, end_logits, max_answer_length=e - s)
    assert short[examples[0].id] != answers[examples[0].id]


def test_finetune_tiny_model_end_to_end(tiny_bert_dir, xquad_en, tmp_path):
    source = small_squad(xquad_en, tmp_path / "small.json", articles=3)
    train, dev = qa.split_squad_by_article(source, 2, tmp_path / "split")
    args = TrainingArguments(
        output_dir="ignored", max_steps=4, per_device_train_batch_size=8, learning_rate=1e-3, eval_strategy="steps",
        eval_steps=2, save_steps=2, use_cpu=True, report_to="none", seed=0,
    )  # fmt: skip
    out = tmp_path / "out"
    results = qa.finetune(str(tiny_bert_dir), str(train), str(dev), str(out), args, max_length=128, doc_stride=32)
    dev_questions = qa.read_squad(dev)
    assert results.task == "qa" and results.examples == len(dev_questions)
    assert set(results.metrics) == {"exact_match", "f1"}
    assert 0 <= results.metrics["exact_match"] <= results.metrics["f1"] <= 100
    assert results.extra["training"]["steps"] == 4 and (out / "checkpoint-2").is_dir()
    assert json.loads((out / "results.json").read_text())["metrics"] == results.metrics

    # a stock QA folder; transformers 5 has no question-answering pipeline, `qa.answer` stands in
    model = AutoModelForQuestionAnswering.from_pretrained(out, local_files_only=True)
    assert model.config.architectures == ["BertForQuestionAnswering"]
    context = "Kjeld Christensen moved from Aarhus to Copenhagen in 1998."
    tokenizer = AutoTokenizer.from_pretrained(out)
    reply = qa.answer(model, tokenizer, "Where did he move?", context, max_length=128, doc_stride=32)
    assert reply["answer"] == context[reply["start"] : reply["end"]] and 0 <= reply["score"] <= 1

    predictions = tmp_path / "predictions.json"
    again = qa.evaluate(str(out), str(dev), predictions_file=str(predictions), max_length=128, doc_stride=32)
    assert again.metrics == pytest.approx(results.metrics)
    assert set(json.loads(predictions.read_text())) == {e.id for e in dev_questions}


def test_tiny_model_overfits_one_paragraph(tiny_bert_dir, xquad_en, tmp_path):
    """Start/end positions point at the answers: a tiny model memorises 6 questions (untrained: EM about 0)."""
    data = small_squad(xquad_en, tmp_path / "one.json", articles=1, questions=6)
    args = TrainingArguments(
        output_dir="ignored", max_steps=80, per_device_train_batch_size=16, learning_rate=3e-3, use_cpu=True,
        report_to="none", seed=0, save_strategy="no",
    )  # fmt: skip
    results = qa.finetune(str(tiny_bert_dir), str(data), None, str(tmp_path / "out"), args, 128, 32)
    assert results.split == "train" and results.examples == 6
    assert results.metrics["f1"] > 40, results.metrics  # at least 3 of 6; 80 steps reach 5 of 6
