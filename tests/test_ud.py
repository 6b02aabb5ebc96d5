"""UD fine-tuning end to end on a slice of Danish-DDT: a tiny encoder for most tests, me5-small for one short run."""

import numpy as np
import pytest
import torch
from transformers import TrainingArguments

from time_hub.encoder import load_encoder
from time_hub.tasks.conllu import read_conllu, write_conllu
from time_hub.tasks.results import TaskResults
from time_hub.tasks.ud import evaluate, finetune
from time_hub.tasks.ud_metrics import METRICS
from time_hub.tasks.ud_model import CONFIG_FILE, HEADS_FILE, UDModel, predict
from time_hub.tasks.ud_parser import is_tree


@pytest.fixture(scope="module")
def data(shared, tmp_path_factory):
    """64 training and 32 evaluation sentences of da/dev.conllu."""
    root = tmp_path_factory.mktemp("ud_data")
    sentences = read_conllu(shared / "data" / "ud" / "da" / "dev.conllu")
    write_conllu(root / "train.conllu", sentences[:64])
    write_conllu(root / "eval.conllu", sentences[64:96])
    return root


def training_args(output_dir, **overrides) -> TrainingArguments:
    settings = dict(
        output_dir=str(output_dir),
        num_train_epochs=3,
        per_device_train_batch_size=16,
        per_device_eval_batch_size=16,
        learning_rate=2e-3,
        eval_strategy="epoch",
        save_strategy="epoch",
        load_best_model_at_end=True,
        save_total_limit=1,
        logging_steps=4,
        report_to="none",
        use_cpu=True,
        seed=7,
        disable_tqdm=True,
    )
    return TrainingArguments(**{**settings, **overrides})


@pytest.fixture(scope="module")
def trained(tiny_bert_dir, data, tmp_path_factory):
    """One fine-tuning run shared by the tests below: (results, model directory)."""
    out = tmp_path_factory.mktemp("ud_model")
    results = finetune(
        str(tiny_bert_dir), str(data / "train.conllu"), str(data / "eval.conllu"), str(out / "model"),
        training_args(out / "checkpoints"), max_length=64,
    )  # fmt: skip
    return results, out / "model"


def test_finetune_returns_and_saves_results(trained, data):
    results, model_dir = trained
    assert results.task == "ud" and results.split == "dev" and results.examples == 32
    assert set(results.metrics) == set(METRICS)
    assert all(0.0 <= v <= 100.0 for v in results.metrics.values())
    assert results.metrics["UPOS"] > 0.0 and results.metrics["UAS"] > 0.0
    assert TaskResults.load(model_dir / "results.json") == results
    for name in ("config.json", "model.safetensors", "tokenizer.json", HEADS_FILE, CONFIG_FILE):
        assert (model_dir / name).is_file(), name
    model = UDModel.from_pretrained(model_dir)
    assert results.num_parameters == sum(p.numel() for p in model.parameters())
    assert results.extra["training"]["steps"] == 12  # 3 epochs x 64/16 batches
    assert results.extra["truncated_words"] > 0  # max_length=64 cuts the longest sentences; they still decode


def test_model_selection_keeps_the_best_las(trained):
    results, _ = trained
    training = results.extra["training"]
    assert len(training["dev_las"]) == 3  # one evaluation per epoch
    assert training["best_dev_metric"] == max(training["dev_las"])
    assert results.metrics["LAS"] == pytest.approx(training["best_dev_metric"])  # the saved model is the best one


def test_predictions_are_well_formed_trees_and_keep_the_rest(trained, data, tmp_path):
    _, model_dir = trained
    predictions = tmp_path / "pred.conllu"
    results = evaluate(str(model_dir), str(data / "eval.conllu"), predictions_file=str(predictions))
    gold, predicted = read_conllu(data / "eval.conllu"), read_conllu(predictions)
    assert len(predicted) == len(gold) == results.examples
    for g, p in zip(gold, predicted):
        assert is_tree([w.head for w in p.words]), p.sent_id
        assert p.comments == g.comments and p.forms == g.forms
        assert [w.misc for w in p.words] == [w.misc for w in g.words]
        assert [w.deprel for w in p.words if w.head == 0] == ["root"]
    assert results.metrics == trained[0].metrics


def test_save_and_reload_give_identical_predictions(trained, data, tokenizer, tmp_path):
    _, model_dir = trained
    gold = read_conllu(data / "eval.conllu")
    model = UDModel.from_pretrained(model_dir)
    before, _ = predict(model, tokenizer, gold, batch_size=8)
    model.save_pretrained(tmp_path / "copy", tokenizer)
    reloaded = UDModel.from_pretrained(tmp_path / "copy")
    after, _ = predict(reloaded, tokenizer, gold, batch_size=5)  # other batching, same answers
    assert [s.to_text() for s in after] == [s.to_text() for s in before]
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, reloaded.state_dict()[name]), name


def test_truncated_words_get_fallbacks_inside_a_tree(trained, data, tokenizer):
    _, model_dir = trained
    model = UDModel.from_pretrained(model_dir)
    model.settings.max_length = 8  # at most 6 words keep their first piece
    gold = read_conllu(data / "eval.conllu")
    predicted, truncated = predict(model, tokenizer, gold)
    assert truncated >= sum(max(0, len(s.words) - 6) for s in gold) > 0
    for p in predicted:
        heads = [w.head for w in p.words]
        assert is_tree(heads)
        root_child = heads.index(0) + 1
        assert all(w.lemma == w.form and w.upos == model.labels.upos[0] for w in p.words[6:])
        assert all(w.head == root_child for w in p.words[6:])


def test_training_changes_the_encoder(trained, tiny_bert_dir):
    _, model_dir = trained
    before, after = load_encoder(tiny_bert_dir).state_dict(), load_encoder(model_dir).state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(changed) > len(before) // 2


def test_early_stopping_and_no_dev(tiny_bert_dir, data, tmp_path):
    # learning rate 0 (heads included): LAS never improves after the first evaluation, so patience 1 stops after
    # epoch 2 of 10
    results = finetune(
        str(tiny_bert_dir), str(data / "eval.conllu"), str(data / "eval.conllu"), str(tmp_path / "m"),
        training_args(tmp_path / "ckpt", learning_rate=0.0, num_train_epochs=10, save_total_limit=None),
        max_length=64, early_stopping_patience=1, head_learning_rate=None,
    )  # fmt: skip
    assert results.extra["training"]["steps"] == 2 * 2  # 2 epochs x 32/16 batches
    no_dev = finetune(
        str(tiny_bert_dir), str(data / "eval.conllu"), None, str(tmp_path / "m2"),
        training_args(tmp_path / "ckpt2", num_train_epochs=1), max_length=64,
    )  # fmt: skip
    assert no_dev.split == "train" and no_dev.examples == 32


def test_malformed_input_names_file_and_line(trained, data, tmp_path):
    _, model_dir = trained
    bad = tmp_path / "bad.conllu"
    lines = (data / "eval.conllu").read_text().split("\n")
    lines[5] = "\t".join(lines[5].split("\t")[:7])
    bad.write_text("\n".join(lines))
    with pytest.raises(ValueError, match=f"^{bad}:6: expected 10 tab-separated columns, got 7$"):
        evaluate(str(model_dir), str(bad))


@pytest.mark.slow  # about 15 s on 2 shared cores
def test_real_encoder_short_run(teacher_dir, data, tmp_path):
    """me5-small: a few steps on 32 sentences, then evaluation of the saved model."""
    train = tmp_path / "train.conllu"
    write_conllu(train, read_conllu(data / "train.conllu")[:32])
    results = finetune(
        str(teacher_dir), str(train), str(data / "eval.conllu"), str(tmp_path / "model"),
        training_args(tmp_path / "ckpt", num_train_epochs=1, learning_rate=1e-4, eval_strategy="no",
                      save_strategy="no", load_best_model_at_end=False),
        max_length=128,
    )  # fmt: skip
    assert set(results.metrics) == set(METRICS)
    assert all(0.0 <= v <= 100.0 for v in results.metrics.values())
    assert results.num_parameters > 39_000_000
    assert results.extra["training"]["steps"] == 2
    assert np.isfinite(results.extra["training"]["train_loss"])
