"""Model cards from a real (tiny) run: metadata that huggingface_hub parses back, numbers traceable to the JSON files,
bad inputs named. Card tests check substrings offline; the Hub's validate-yaml runs in tests/test_publish.py."""

import dataclasses
import json
from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results

from time_hub.card_data import non_default_arguments
from time_hub.publish.card import CardInputs, count_weights, write_card
from time_hub.publish.hub import PublishArguments, PublishError, listing, repo_name, stage
from time_hub.run_dir import RunDir
from time_hub.tasks.results import TaskResults

ROOT = Path(__file__).resolve().parents[1]
DA_TASKS = ROOT / "benchmarks" / "results" / "da_tasks_1000steps"


def test_callback_recorded_the_run(tiny_run):
    data = json.loads((tiny_run / RunDir.CARD_DATA).read_text())
    assert data["global_step"] == 4 and data["train_batch_size"] == 4
    assert data["tokens_seen"] > 0 and data["tokens_seen_kind"] == "counted by the Trainer, padding excluded"
    assert data["hardware"]["cpu_count"] >= 1 and data["software"]["transformers"]
    assert [p["step"] for p in data["curve"] if "loss" in p] == [1, 2, 3, 4]
    assert data["hyperparameters"]["max_steps"] == 4 and "output_dir" not in data["hyperparameters"]
    assert data["emissions"] is None or data["emissions"]["kind"] == "estimate"


def test_non_default_arguments_lists_only_changes(tmp_path):
    from transformers import TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path), learning_rate=1e-3, report_to="none")
    assert non_default_arguments(args) == {"learning_rate": 1e-3}


def test_encoder_card_from_a_real_run(tiny_run, tmp_path):
    results = [DA_TASKS / "distilled" / "ud.json", DA_TASKS / "distilled" / "ner.json"]
    teacher = [DA_TASKS / "teacher" / "ud.json", DA_TASKS / "teacher" / "ner.json"]
    inputs = CardInputs(
        run_dir=tiny_run,
        model_dir=tiny_run / "best",
        repo_id="time/time-da-xs",
        language=["da"],
        base_model="intfloat/multilingual-e5-small",
        results=results,
        teacher_results=teacher,
    )
    path, files = write_card(inputs, tmp_path / "repo")
    card = ModelCard.load(path)
    meta = card.data.to_dict()
    assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "feature-extraction"
    assert meta["language"] == ["da"] and meta["license"] == "apache-2.0"
    # A random-init student holds none of the teacher's weights: no base model in the metadata, the body names it.
    assert "base_model" not in meta and "base_model_relation" not in meta
    assert "distilled from the multilingual teacher `intfloat/multilingual-e5-small`" in card.text
    assert {"distillation", "minilmv2", "time"} <= set(meta["tags"])
    name, evals = model_index_to_eval_results(meta["model-index"])
    assert name == "time/time-da-xs"
    upos = next(e for e in evals if e.metric_name == "UPOS")
    ud = TaskResults.load(results[0])
    assert upos.metric_value == round(ud.metrics["UPOS"], 2) and upos.dataset_split == ud.split
    ner_f1 = TaskResults.load(results[1]).metrics["f1"]
    teacher_f1 = TaskResults.load(teacher[1]).metrics["f1"]
    body = card.text
    assert f"| {ner_f1:.2f} | {teacher_f1:.2f} | {100 * ner_f1 / teacher_f1:.1f}% |" in body
    assert 'AutoModel.from_pretrained("time/time-da-xs")' in body and "Not for fill-mask" in body
    total, _ = count_weights(tiny_run / "best")
    assert f"{total / 1e6:.1f} M parameters" in body
    selection = json.loads((tiny_run / "selection.json").read_text())
    assert f"{selection['best']['loss']:.4f}" in body
    assert "arXiv:2512.14645" in body and "MiniLMv2" in body
    for name in files:
        assert (tmp_path / "repo" / name).is_file() and f"`{name}`" in body or name.startswith("assets/")
    assert (tmp_path / "repo" / "assets" / "training_curve.png").read_bytes()[:4] == b"\x89PNG"


def test_task_card_and_staged_repository(tiny_run):
    args = PublishArguments(run_dir=str(tiny_run), lang="da", size="xs", task="ner", dry_run=True)
    folder, repo_id = stage(args)
    assert repo_id == repo_name("time", "da", "xs", "ner") == "time/time-da-xs-ner"
    names = [n for n, _ in listing(folder)]
    assert {"model.safetensors", "config.json", "tokenizer.json", "README.md"} <= set(names)
    assert not any(n.endswith((".bin", ".pt")) or n.startswith("checkpoint") for n in names)
    card = ModelCard.load(folder / "README.md")
    assert card.data.pipeline_tag == "token-classification"
    assert card.data.base_model == "time/time-da-xs"
    assert 'pipeline("token-classification", model="time/time-da-xs-ner"' in card.text
    assert "provenance/results-0-ner.json" in names


def test_bad_inputs_are_named(tiny_run, tmp_path):
    with pytest.raises(PublishError, match="no run_config.json"):
        stage(PublishArguments(run_dir=str(tmp_path), lang="da"))
    broken = tmp_path / "results.json"
    broken.write_text("{not json")
    inputs = CardInputs(tiny_run, tiny_run / "best", "time/x", ["da"], results=[broken])
    with pytest.raises(ValueError, match="results.json: not valid JSON"):
        write_card(inputs, tmp_path / "repo")
    assert not (tmp_path / "repo" / "README.md").exists()
    with pytest.raises(ValueError, match="repo_id must be ORG/NAME"):
        PublishArguments(run_dir=str(tiny_run), lang="da", repo_id="no-namespace")
    with pytest.raises(ValueError, match="no \\*.safetensors"):
        count_weights(tmp_path)


def test_extra_loss_terms_in_words():
    from time_hub.publish.card import extra_terms_text
    from time_hub.run_dir import DistillationSettings

    plain = DistillationSettings("t", 12, 3, 48, ["qq", "kk", "vv"], "float32")
    assert extra_terms_text(plain) == ""
    text = extra_terms_text(
        dataclasses.replace(
            plain,
            hidden_layers=[[12, 3]],
            hidden_loss_weight=1.0,
            extra_relation_layers=[[6, 2]],
            extra_relation_weight=0.5,
        )
    )
    assert text == (
        "; plus the same relations at teacher/student layers 6/2 (weight 0.5) and hidden-state MSE at teacher/student "
        "layers 12/3 through a learned projection (weight 1.0)"
    )


def test_card_data_is_typed_and_only_hub_fields_reach_the_front_matter():
    from huggingface_hub import EvalResult

    from time_hub.publish.model_card_data import HUB_FIELDS, TimeModelCardData

    result = EvalResult(
        task_type="token-classification", dataset_type="ud", dataset_name="ud", metric_type="upos", metric_value=90.0
    )
    data = TimeModelCardData(
        language=["da"], tags=["time", "time", "da"], model_name="o/m", eval_results=[result], repo_id="o/m"
    )
    meta = data.to_dict()
    assert set(meta) <= set(HUB_FIELDS) | {"model-index"} and "repo_id" not in meta and "results" not in meta
    assert meta["tags"] == ["time", "da"]  # ModelCardData's own normalisation still runs
    assert model_index_to_eval_results(meta["model-index"])[1][0].metric_value == 90.0
    with pytest.raises(ValueError, match="eval_results"):
        TimeModelCardData(language=["da"], eval_results=[result])  # model-index needs a model name
