"""DistillationTrainer on a tiny teacher that shares the real tokenizer: training, saving, resuming."""

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoTokenizer, BertConfig, TrainerCallback

from time_hub.distill.command import distill
from time_hub.distill.config import DistillationConfig
from time_hub.distill.data import CorpusArguments
from time_hub.distill.select import SelectArguments, select
from time_hub.distill.student import StudentArguments
from time_hub.run_dir import DistillationSettings, RunDir


@pytest.fixture
def corpus(tmp_path, da_lines):
    path = tmp_path / "da.txt"
    path.write_text("\n".join(da_lines[:400]) + "\n", encoding="utf-8")
    return CorpusArguments(train_files=[str(path)], validation_holdout_lines=40, max_seq_length=32)


def _config(teacher, output_dir, **overrides):
    values = dict(
        output_dir=str(output_dir),
        teacher_name_or_path=str(teacher),
        num_relation_heads=4,
        max_steps=6,
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        save_steps=3,
        logging_steps=2,
        report_to="none",
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
    )
    return DistillationConfig(**{**values, **overrides})


class _Crash(TrainerCallback):
    def __init__(self, at_step):
        self.at_step = at_step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.at_step:
            raise KeyboardInterrupt("simulated kill")


class _Steps(TrainerCallback):
    def __init__(self):
        self.seen = []

    def on_step_end(self, args, state, control, **kwargs):
        self.seen.append(state.global_step)


def test_training_updates_the_student_only_and_saves_standard_checkpoints(tmp_path, tiny_bert_dir, corpus):
    teacher_before = load_file(tiny_bert_dir / "model.safetensors")
    trainer = distill(_config(tiny_bert_dir, tmp_path / "run"), StudentArguments("L2-H32-A2"), corpus)

    teacher_now = {k: v.cpu() for k, v in trainer.teacher.state_dict().items()}
    for name, value in teacher_now.items():  # frozen, and truncation kept the distillation layer's weights
        torch.testing.assert_close(value.float(), teacher_before[name].float())
    assert not any(p.requires_grad for p in trainer.teacher.parameters()) and not trainer.teacher.training

    for step in (3, 6):
        ckpt = tmp_path / "run" / f"checkpoint-{step}"
        saved = load_file(ckpt / "model.safetensors")
        assert not any(k.startswith("teacher") for k in saved)
        assert saved["embeddings.word_embeddings.weight"].shape == (47000, 32)
        assert json.loads((ckpt / DistillationSettings.FILE).read_text()) == {
            "teacher": str(tiny_bert_dir),
            "teacher_layer": 2,
            "student_layer": 2,
            "num_relation_heads": 4,
            "relations": ["qq", "kk", "vv"],
            "teacher_dtype": "float32",
        }
        assert AutoModel.from_pretrained(ckpt).config.model_type == "bert"
        assert len(AutoTokenizer.from_pretrained(ckpt)) == 47000

    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert logged and all({"qq", "kk", "vv"} <= set(entry) for entry in logged)
    for entry in logged:
        assert entry["loss"] == pytest.approx(entry["qq"] + entry["kk"] + entry["vv"], rel=1e-3)

    first = load_file(tmp_path / "run" / "checkpoint-3" / "model.safetensors")
    last = load_file(tmp_path / "run" / "checkpoint-6" / "model.safetensors")
    changed = [k for k in first if not torch.equal(first[k], last[k])]
    assert any("attention.self.query" in k for k in changed)


def test_killed_run_resumes_from_its_last_checkpoint(tmp_path, tiny_bert_dir, corpus):
    student = StudentArguments("L2-H32-A2")
    distill(_config(tiny_bert_dir, tmp_path / "straight"), student, corpus)

    with pytest.raises(KeyboardInterrupt):
        distill(_config(tiny_bert_dir, tmp_path / "crashed"), student, corpus, callbacks=[_Crash(at_step=5)])
    assert (tmp_path / "crashed" / "checkpoint-3").is_dir() and not (tmp_path / "crashed" / "checkpoint-6").exists()

    steps = _Steps()
    resumed_args = _config(tiny_bert_dir, tmp_path / "crashed", resume_from_checkpoint="last")
    resumed = distill(resumed_args, student, corpus, callbacks=[steps])
    assert steps.seen == [4, 5, 6] and resumed.state.global_step == 6
    # Same data order, RNG and optimizer state: the resumed run ends where the uninterrupted one did.
    a = load_file(tmp_path / "straight" / "model.safetensors")
    b = load_file(tmp_path / "crashed" / "model.safetensors")
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5)


def test_config_validation_names_the_problem(tiny_bert_dir, tmp_path):
    with pytest.raises(ValueError, match="teacher_name_or_path is required"):
        DistillationConfig(output_dir=str(tmp_path))
    with pytest.raises(ValueError, match="relations must be"):
        _config(tiny_bert_dir, tmp_path, relations=["qq", "qk"])
    with pytest.raises(ValueError, match="teacher_dtype"):
        _config(tiny_bert_dir, tmp_path, teacher_dtype="int8")
    with pytest.raises(ValueError, match="teacher_layer must be a positive integer"):
        _config(tiny_bert_dir, tmp_path, teacher_layer=0)

    large = BertConfig(num_hidden_layers=24, hidden_size=1024, num_attention_heads=16)
    small = BertConfig(num_hidden_layers=4, hidden_size=256, num_attention_heads=4)
    config = _config(tiny_bert_dir, tmp_path, num_relation_heads=None)
    with pytest.raises(ValueError, match="the teacher has 24 layers: set teacher_layer"):
        config.resolve(large, small)
    resolved = _config(tiny_bert_dir, tmp_path, teacher_layer=12, num_relation_heads=None).resolve(large, small)
    assert resolved.num_relation_heads == 64
    with pytest.raises(ValueError, match="student hidden size 256 is not divisible by num_relation_heads=48"):
        config.resolve(BertConfig(hidden_size=384, num_attention_heads=12), small)
    with pytest.raises(ValueError, match="student_layer=5 but the student has 4 layers"):
        _config(tiny_bert_dir, tmp_path, student_layer=5, num_relation_heads=None).resolve(BertConfig(), small)


class _InitialWeights(TrainerCallback):
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.weights = {k: v.detach().clone() for k, v in model.state_dict().items()}


class _Logs(TrainerCallback):
    def __init__(self):
        self.logs = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.logs.append(dict(logs))


def _untouched(run_dir, initial) -> list[str]:
    saved = load_file(run_dir / "model.safetensors")
    assert set(saved) == set(initial)  # no pooler or other extra tensors are published
    return [name for name in saved if torch.equal(saved[name], initial[name])]


def test_relations_alone_leave_the_last_layer_untrained_and_the_hidden_term_trains_every_parameter(
    tmp_path, tiny_bert_dir, corpus
):
    relations_only, with_hidden = _InitialWeights(), _InitialWeights()
    student = StudentArguments("L2-H32-A2")
    distill(_config(tiny_bert_dir, tmp_path / "rel"), student, corpus, callbacks=[relations_only])
    untouched = _untouched(tmp_path / "rel", relations_only.weights)
    assert "encoder.layer.1.output.dense.bias" in untouched  # the gap the hidden term closes

    logs = _Logs()
    args = _config(tiny_bert_dir, tmp_path / "hidden", hidden_loss_weight=1.0, extra_relation_layers=["1:1"])
    distill(args, student, corpus, callbacks=[with_hidden, logs])
    assert _untouched(tmp_path / "hidden", with_hidden.weights) == []
    train_logs = [entry for entry in logs.logs if "loss" in entry]
    assert {"qq", "kk", "vv", "rel@1:1", "hidden@2:2"} <= set(train_logs[0])
    checkpoint = tmp_path / "hidden" / "checkpoint-6"
    assert (checkpoint / RunDir.PROJECTIONS).is_file()
    assert json.loads((checkpoint / DistillationSettings.FILE).read_text())["hidden_layers"] == [[2, 2]]


def test_hidden_term_resumes_with_its_projection(tmp_path, tiny_bert_dir, corpus):
    """The projection is training state: a killed run resumes to the weights of an uninterrupted one."""
    student = StudentArguments("L2-H32-A2-I64")
    overrides = {"hidden_loss_weight": 1.0, "hidden_layers": ["2:1"]}
    distill(_config(tiny_bert_dir, tmp_path / "straight", **overrides), student, corpus)
    with pytest.raises(KeyboardInterrupt):
        distill(_config(tiny_bert_dir, tmp_path / "crashed", **overrides), student, corpus, callbacks=[_Crash(5)])
    resumed = _config(tiny_bert_dir, tmp_path / "crashed", resume_from_checkpoint="last", **overrides)
    distill(resumed, student, corpus)
    a = load_file(tmp_path / "straight" / "model.safetensors")
    b = load_file(tmp_path / "crashed" / "model.safetensors")
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5)


def test_prune_init_cuts_the_student_out_of_the_teacher(tmp_path, tiny_bert_dir, corpus):
    student = StudentArguments("L1-H24-A2-I64", student_init="prune", prune_importance_lines=20)
    trainer = distill(_config(tiny_bert_dir, tmp_path / "run", max_steps=2, save_steps=2), student, corpus)
    report = json.loads((tmp_path / "run" / "student_init" / "prune_report.json").read_text())
    assert report["layers"] == [1] and report["hidden_size"]["after"] == 24 and report["hidden_init"] == "svd"
    config = trainer.model.config
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads) == (1, 24, 2)
    assert config.intermediate_size == 64 and getattr(trainer.model, "pooler", None) is None
    before = (tmp_path / "run" / "student_init" / "model.safetensors").stat().st_mtime_ns
    distill(_config(tiny_bert_dir, tmp_path / "run", max_steps=2, save_steps=2), student, corpus)
    assert (tmp_path / "run" / "student_init" / "model.safetensors").stat().st_mtime_ns == before  # re-used


def test_zero_steps_keeps_the_initialised_student_and_select_scores_it(tmp_path, tiny_bert_dir, corpus):
    student = StudentArguments(
        "L1-H48-A4-I96", student_init="prune", student_layers="first-1", prune_importance_lines=8
    )
    distill(_config(tiny_bert_dir, tmp_path / "run", max_steps=0), student, corpus)
    init = load_file(tmp_path / "run" / "student_init" / "model.safetensors")
    teacher = load_file(tiny_bert_dir / "model.safetensors")  # the bottom layer at full width: its exact weights
    assert all(torch.equal(init[k], teacher[k]) for k in init) and "encoder.layer.0.output.dense.weight" in init
    for folder in (tmp_path / "run", tmp_path / "run" / "checkpoint-0"):
        saved = load_file(folder / "model.safetensors")
        assert saved.keys() == init.keys() and all(torch.equal(saved[k], init[k]) for k in init)
    selection = select(SelectArguments(str(tmp_path / "run"), validation_files=corpus.train_files, use_cpu=True))
    assert selection.best["checkpoint"] == "checkpoint-0" and selection.best["loss"] < selection.random_init["loss"]


def test_student_init_keys_are_checked():
    with pytest.raises(ValueError, match="student_init must be one of"):
        StudentArguments(student_init="copy")
    with pytest.raises(ValueError, match="student_layers is only used with student_init: prune"):
        StudentArguments("L2-H32-A2", student_layers="every-2")
    with pytest.raises(ValueError, match="keeps 3 layers, student_shape L2-H32-A2 has 2"):
        StudentArguments("L2-H32-A2", student_init="prune", student_layers="0,1,2")
    with pytest.raises(ValueError, match="student_hidden_init must be svd or slice"):
        StudentArguments(student_init="prune", student_hidden_init="pca")
