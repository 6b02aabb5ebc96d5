import copy
import math
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModel,
    BertConfig,
    DebertaV2Config,
    DistilBertConfig,
    ModernBertConfig,
    RobertaConfig,
    XLMRobertaConfig,
)
from transformers.models.modernbert.modeling_modernbert import apply_rotary_pos_emb

from time_hub.distill.command import distill
from time_hub.distill.config import DistillationConfig
from time_hub.distill.data import CorpusArguments
from time_hub.distill.qkv import QKVCapture, adapter_for, encoder_layers, model_family, truncate_after
from time_hub.distill.relations import minilm_relation_loss
from time_hub.distill.select import SelectArguments, select
from time_hub.distill.student import StudentArguments, build_student, student_config

TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64)
CONFIGS = {
    "bert": BertConfig(**TINY),
    "roberta": RobertaConfig(**TINY, pad_token_id=1),
    "xlm-roberta": XLMRobertaConfig(**TINY, pad_token_id=1),
    "deberta-v2": DebertaV2Config(
        **TINY, relative_attention=True, position_buckets=8, pos_att_type=["p2c", "c2p"], position_biased_input=False
    ),
    # Layers: full (no attention norm), sliding (window of 4, so it bites at 7 tokens), full; head_dim 8.
    "modernbert": ModernBertConfig(
        **TINY,
        global_attn_every_n_layers=2,
        local_attention=4,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        cls_token_id=1,
        sep_token_id=2,
        attn_implementation="eager",
    ),
}
PROJECTED = sorted(set(CONFIGS) - {"modernbert"})  # families whose Q/K/V are plain per-projection outputs
# LTG-BERT's remote code (vendored from HPLT-BERT) and a tiny config.json with auto_map: 3 layers, hidden 32, 4 heads,
# 8 relative-position buckets, vocabulary 99.
LTGBERT = Path(__file__).parent / "fixtures" / "ltgbert"


def _ltgbert(**overrides):
    """A tiny LTG-BERT built from the vendored remote code, as `trust_remote_code=True` builds the real one."""
    config = AutoConfig.from_pretrained(LTGBERT, trust_remote_code=True, **overrides)
    model = AutoModel.from_config(config, trust_remote_code=True)
    with torch.no_grad():  # the wrapper leaves this table as torch.empty, for a checkpoint to fill
        torch.nn.init.trunc_normal_(model.embedding.relative_embedding, std=0.1)
    return model.eval()


def _model(name):
    torch.manual_seed(0)
    if name == "ltgbert":
        return _ltgbert()
    return AutoModel.from_config(copy.deepcopy(CONFIGS[name])).eval()


def _inputs():
    ids = torch.randint(5, 99, (2, 7))
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0
    return ids, mask


@pytest.mark.parametrize("name", PROJECTED)
@pytest.mark.parametrize("layer", [1, 3])
def test_hooked_qkv_equal_manual_projection_of_layer_input(name, layer):
    model = _model(name)
    capture = QKVCapture(model, layer)
    ids, mask = _inputs()
    with torch.no_grad():
        hidden = model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[layer - 1]
    paths = adapter_for(model)
    target = encoder_layers(model)[layer - 1]
    for got, path in zip(capture.qkv, (paths.query, paths.key, paths.value)):
        assert got.shape == (2, 7, 32)
        torch.testing.assert_close(got, target.get_submodule(path)(hidden))


@pytest.mark.parametrize("name", [*sorted(CONFIGS), "ltgbert"])
def test_truncated_model_gives_the_same_qkv_and_never_runs_upper_layers(name):
    model = _model(name)
    ids, mask = _inputs()
    full = QKVCapture(model, 2)
    with torch.no_grad():
        model(input_ids=ids, attention_mask=mask)
    expected = [t.clone() for t in full.qkv]
    full.remove()

    upper = encoder_layers(model)[2]
    ran = []
    upper.register_forward_hook(lambda *a: ran.append(True))
    truncate_after(model, 2)
    assert len(encoder_layers(model)) == 2 and model.config.num_hidden_layers == 2
    truncate_after(model, 2)  # idempotent
    capture = QKVCapture(model, 2)
    with torch.no_grad():
        model(input_ids=ids, attention_mask=mask)
    for got, want in zip(capture.qkv, expected):
        torch.testing.assert_close(got, want)
    assert not ran


def test_capture_is_fresh_on_every_forward_and_keeps_the_graph():
    model = _model("xlm-roberta").train()
    capture = QKVCapture(model, 3)
    ids, mask = _inputs()
    model(input_ids=ids, attention_mask=mask)
    first = capture.qkv[0]
    model(input_ids=ids[:1], attention_mask=mask[:1])
    assert capture.qkv[0].shape[0] == 1 and first.shape[0] == 2
    capture.qkv[2].sum().backward()
    assert encoder_layers(model)[2].attention.self.value.weight.grad is not None


def test_unsupported_architecture_and_bad_layer_are_clear_errors():
    model = AutoModel.from_config(DistilBertConfig(vocab_size=99, dim=32, n_layers=1, n_heads=4, hidden_dim=64))
    supported = "bert, deberta-v2, ltgbert, modernbert, roberta, xlm-roberta"
    with pytest.raises(ValueError, match=f"model_type='distilbert'.*{supported}"):
        QKVCapture(model, 1)
    with pytest.raises(ValueError, match="layer 4 is out of range: the model has 3 layers"):
        QKVCapture(_model("bert"), 4)
    with pytest.raises(RuntimeError, match="were not captured"):
        _ = QKVCapture(_model("bert"), 1).qkv


def test_as_model_output_makes_the_forward_return_qkv_only_inside_the_context():
    model = _model("bert")
    capture = QKVCapture(model, 2)
    ids, mask = _inputs()
    with capture.as_model_output():
        out = model(input_ids=ids, attention_mask=mask)
    assert isinstance(out, tuple) and len(out) == 3 and all(a is b for a, b in zip(out, capture.qkv))
    assert model(input_ids=ids, attention_mask=mask).last_hidden_state.shape == (2, 7, 32)


def _layer_input(model, layer):
    """Run the model on a padded batch, returning the capture and the hidden states entering layer `layer`."""
    capture = QKVCapture(model, layer)
    seen = []
    handle = encoder_layers(model)[layer - 1].register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    ids, mask = _inputs()
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, output_attentions=True)
    handle.remove()
    return capture, seen[0], out, mask


def _manual_rope(x, theta, head_dim=8):
    """Rotary by hand at positions 0..seq-1 (the model's own `apply_rotary_pos_emb` on cos/sin built from the
    config's base), then each head's dims reordered pair by pair: 0, 4, 1, 5, 2, 6, 3, 7."""
    batch, seq, hidden = x.shape
    inv_freq = theta ** (-torch.arange(0, head_dim, 2).float() / head_dim)
    angles = torch.arange(seq).float()[:, None] * inv_freq
    emb = torch.cat((angles, angles), dim=-1)[None]
    heads = x.view(batch, seq, hidden // head_dim, head_dim)
    rotated, _ = apply_rotary_pos_emb(heads, heads, emb.cos(), emb.sin(), unsqueeze_dim=2)
    order = [0, 4, 1, 5, 2, 6, 3, 7]
    return rotated[..., order].reshape(batch, seq, hidden)


@pytest.mark.parametrize("layer", [1, 2, 3])
def test_modernbert_q_and_k_are_the_fused_projection_after_rope_and_v_as_projected(layer):
    model = _model("modernbert")
    capture, hidden, _, _ = _layer_input(model, layer)
    target = encoder_layers(model)[layer - 1]
    assert isinstance(target.attn_norm, torch.nn.Identity) == (layer == 1)
    layer_type = model.config.layer_types[layer - 1]
    assert layer_type == ("sliding_attention" if layer == 2 else "full_attention")
    theta = model.config.rope_parameters[layer_type]["rope_theta"]  # 160k global, 10k local
    with torch.no_grad():
        q, k, v = target.attn.Wqkv(target.attn_norm(hidden)).chunk(3, dim=-1)
    got_q, got_k, got_v = capture.qkv
    assert got_q.shape == got_k.shape == got_v.shape == (2, 7, 32)
    torch.testing.assert_close(got_q, _manual_rope(q, theta))
    torch.testing.assert_close(got_k, _manual_rope(k, theta))
    torch.testing.assert_close(got_v, v)
    assert not torch.allclose(got_q, _manual_rope(q, 10_000.0 if theta != 10_000.0 else 160_000.0))


@pytest.mark.parametrize("layer", [1, 3])
def test_modernbert_captured_q_k_give_the_models_own_attention_probabilities(layer):
    model = _model("modernbert")
    capture, _, out, mask = _layer_input(model, layer)
    q, k, _ = (t.view(2, 7, 4, 8).transpose(1, 2) for t in capture.qkv)  # one relation head per attention head
    scores = q @ k.transpose(-1, -2) / 8**0.5
    scores = scores.masked_fill(~mask.bool()[:, None, None, :], float("-inf"))
    torch.testing.assert_close(scores.softmax(-1), out.attentions[layer - 1])


@pytest.mark.parametrize("layer", [1, 2])
def test_modernbert_relations_only_see_relative_positions_even_with_relation_heads_inside_attention_heads(layer):
    model = _model("modernbert")
    with torch.no_grad():  # large enough scores that the relations are far from uniform
        encoder_layers(model)[layer - 1].attn.Wqkv.weight.mul_(20)
    capture = QKVCapture(model, layer)
    ids = torch.randint(5, 99, (2, 7))
    mask = torch.ones_like(ids)
    qkv = {}
    with torch.no_grad():
        for shift in (0, 9):
            model(input_ids=ids, attention_mask=mask, position_ids=torch.arange(7)[None] + shift)
            qkv[shift] = capture.qkv
    assert not torch.allclose(qkv[0][0], qkv[9][0], atol=1e-3)  # the rotary did turn Q
    # 8 relation heads of 4 dims inside attention heads of 8: each holds two whole rotary pairs.
    same = minilm_relation_loss(qkv[9], qkv[0], mask, num_relation_heads=8)
    assert same["qq"] < 1e-6 and same["kk"] < 1e-6
    # Without the pairing, a relation head would hold halves of pairs and see absolute positions.
    rotate_half_order = [(t.unflatten(-1, (4, 4, 2)).transpose(-1, -2).flatten(-3) for t in qkv[s][:2]) for s in qkv]
    (q0, k0), (q9, k9) = (tuple(pair) for pair in rotate_half_order)
    unpaired = minilm_relation_loss((q9, k9, qkv[9][2]), (q0, k0, qkv[0][2]), mask, num_relation_heads=8)
    assert unpaired["qq"] > 100 * same["qq"] + 1e-4


def test_modernbert_refuses_unpadded_projection_outputs():
    model = _model("modernbert")
    capture = QKVCapture(model, 1)
    wqkv = encoder_layers(model)[0].attn.Wqkv
    with torch.no_grad():
        model(input_ids=torch.randint(5, 99, (1, 5)))
    capture._raw["attn.Wqkv"] = wqkv(torch.randn(5, 32))  # what a varlen/unpadded forward would give
    capture._qkv = None
    with pytest.raises(RuntimeError, match=r"\(5, 96\) tensor, not \(batch, seq, features\).*padded batches"):
        _ = capture.qkv


def test_modernbert_sliding_layer_capture_warns(caplog):
    with caplog.at_level("WARNING", logger="time_hub.distill.qkv"):
        QKVCapture(_model("modernbert"), 2)
        QKVCapture(_model("modernbert"), 3)
    assert len(caplog.records) == 1 and "layer 2 uses local (sliding-window) attention" in caplog.text


def test_modernbert_teacher_gets_an_absolute_position_bert_student(tokenizer):
    ids = {f"{name}_token_id": getattr(tokenizer, f"{name}_token_id") for name in ("pad", "bos", "eos", "cls", "sep")}
    teacher = ModernBertConfig(**{**TINY, "vocab_size": len(tokenizer)}, **ids, max_position_embeddings=8192)
    assert not hasattr(teacher, "type_vocab_size") and not hasattr(teacher, "layer_norm_eps")
    config = student_config(teacher, tokenizer, "L2-H32-A2")
    assert config.model_type == "bert" and config.num_hidden_layers == 2
    assert config.pad_token_id == tokenizer.pad_token_id and config.vocab_size == len(tokenizer)
    assert config.max_position_embeddings == min(8192, tokenizer.model_max_length)
    assert config.type_vocab_size == 1


def _distill_args(tmp_path, teacher, **overrides):
    values = dict(
        output_dir=str(tmp_path / "run"),
        teacher_name_or_path=str(teacher),
        num_relation_heads=8,
        max_steps=2,
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        save_strategy="no",
        logging_steps=1,
        report_to="none",
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
    )
    return DistillationConfig(**{**values, **overrides})


def test_distillation_runs_from_a_modernbert_teacher(tmp_path, tokenizer, da_lines):
    torch.manual_seed(0)
    config = copy.deepcopy(CONFIGS["modernbert"])
    config.vocab_size = len(tokenizer)
    for name in ("pad", "bos", "eos", "cls", "sep"):
        setattr(config, f"{name}_token_id", getattr(tokenizer, f"{name}_token_id"))
    AutoModel.from_config(config).save_pretrained(tmp_path / "teacher")
    tokenizer.save_pretrained(tmp_path / "teacher")
    text = tmp_path / "da.txt"
    text.write_text("\n".join(da_lines[:40]) + "\n", encoding="utf-8")
    corpus = CorpusArguments(
        train_files=[str(text)], validation_holdout_lines=4, max_seq_length=24, min_train_tokens=100
    )
    trainer = distill(_distill_args(tmp_path, tmp_path / "teacher"), StudentArguments("L2-H32-A2"), corpus)
    assert trainer.state.global_step == 2 and trainer.model.config.model_type == "bert"
    assert trainer.teacher.config.model_type == "modernbert" and trainer.distillation_settings.teacher_layer == 3
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logged) == 2
    for entry in logged:
        assert all(math.isfinite(entry[name]) and entry[name] > 0 for name in ("loss", "qq", "kk", "vv"))
    assert AutoModel.from_pretrained(tmp_path / "run").config.model_type == "bert"


@pytest.mark.parametrize("layer", [1, 3])
def test_ltgbert_qkv_are_the_content_projections_of_the_pre_layernormed_input_batch_first(layer):
    model = _model("ltgbert")
    attention = encoder_layers(model)[layer - 1].attention
    calls = []
    attention.in_proj_qk.register_forward_hook(lambda module, args, output: calls.append(args[0].shape))
    capture, hidden, _, _ = _layer_input(model, layer)
    assert hidden.shape == (7, 2, 32)  # LTG-BERT keeps hidden states sequence-first
    # in_proj_qk runs twice: on the content, then on the (2 * 8 - 1) relative-position embeddings; the first is kept.
    assert calls == [(7, 2, 32), (15, 32)]
    with torch.no_grad():
        normed = attention.pre_layer_norm(hidden)
        q, k = attention.in_proj_qk(normed).chunk(2, dim=-1)
        v = attention.in_proj_v(normed)
    for got, want in zip(capture.qkv, (q, k, v)):
        assert got.shape == (2, 7, 32)
        torch.testing.assert_close(got, want.transpose(0, 1))


def test_ltgbert_family_is_recognised_whatever_model_type_its_config_declares(tokenizer):
    config = AutoConfig.from_pretrained(LTGBERT, trust_remote_code=True, vocab_size=len(tokenizer))
    assert config.model_type == "" and not hasattr(config, "type_vocab_size")  # HPLT's LtgbertConfig
    for declared in ("", "bert"):  # LTG's own LtgBertConfig declares "bert"
        config.model_type = declared
        assert model_family(config) == "ltgbert"
        student = student_config(config, tokenizer, "L2-H32-A2")
        assert student.model_type == "bert" and student.num_hidden_layers == 2
        assert student.vocab_size == len(tokenizer) and student.pad_token_id == tokenizer.pad_token_id
        assert (student.bos_token_id, student.eos_token_id) == (tokenizer.bos_token_id, tokenizer.eos_token_id)
        assert student.max_position_embeddings == min(64, tokenizer.model_max_length)
        assert student.type_vocab_size == 1 and student.layer_norm_eps == config.layer_norm_eps
    with pytest.raises(ValueError, match=r"teacher of the student's family \(bert\), got ltgbert"):
        build_student(config, tokenizer, "L2-H32-A2", init="teacher", teacher=_model("ltgbert"))


def test_ltgbert_relation_loss_backpropagates_to_a_bert_student(tokenizer):
    teacher = _model("ltgbert")
    student = build_student(teacher.config, tokenizer, "L2-H32-A2", seed=0)
    teacher_qkv, student_qkv = QKVCapture(teacher, 3), QKVCapture(student.train(), 2)
    ids, mask = _inputs()
    with torch.no_grad():
        teacher(input_ids=ids, attention_mask=mask)
    student(input_ids=ids, attention_mask=mask)
    losses = minilm_relation_loss(teacher_qkv.qkv, student_qkv.qkv, mask, num_relation_heads=8)
    assert all(math.isfinite(losses[name].item()) and losses[name] > 0 for name in ("loss", "qq", "kk", "vv"))
    losses["loss"].backward()
    assert encoder_layers(student)[1].attention.self.query.weight.grad.abs().sum() > 0


def test_distillation_runs_from_an_ltgbert_teacher_only_with_trust_remote_code(tmp_path, tokenizer, da_lines):
    torch.manual_seed(0)
    _ltgbert(vocab_size=len(tokenizer)).save_pretrained(tmp_path / "teacher")  # writes the remote code alongside
    tokenizer.save_pretrained(tmp_path / "teacher")
    text = tmp_path / "da.txt"
    text.write_text("\n".join(da_lines[:40]) + "\n", encoding="utf-8")
    corpus = CorpusArguments(
        train_files=[str(text)], validation_holdout_lines=4, max_seq_length=24, min_train_tokens=100
    )
    with pytest.raises(ValueError, match="LTG-BERT-family.*set teacher_trust_remote_code: true"):
        distill(_distill_args(tmp_path, tmp_path / "teacher"), StudentArguments("L2-H32-A2"), corpus)

    args = _distill_args(tmp_path, tmp_path / "teacher", teacher_trust_remote_code=True, save_strategy="steps",
                         save_steps=1)  # fmt: skip
    trainer = distill(args, StudentArguments("L2-H32-A2"), corpus, recipe={"max_seq_length": 24})
    assert trainer.state.global_step == 2 and trainer.model.config.model_type == "bert"
    assert model_family(trainer.teacher.config) == "ltgbert" and type(trainer.teacher).__name__ == "LtgbertModel"
    assert trainer.distillation_settings.teacher_layer == 3
    assert trainer.distillation_settings.teacher_trust_remote_code is True
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logged) == 2
    for entry in logged:
        assert all(math.isfinite(entry[name]) and entry[name] > 0 for name in ("loss", "qq", "kk", "vv"))
    student = AutoModel.from_pretrained(tmp_path / "run")  # a stock BERT: no remote code
    assert student.config.model_type == "bert" and not hasattr(student.config, "auto_map")
    # `time-hub select` loads the teacher the same way (the setting travels in distillation.json)
    selection = select(SelectArguments(str(tmp_path / "run"), validation_files=[str(text)], use_cpu=True))
    assert len(selection.checkpoints) == 2 and (tmp_path / "run" / "best" / "config.json").is_file()
