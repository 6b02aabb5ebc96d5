import copy

import pytest
import torch
from transformers import (
    AutoModel,
    BertConfig,
    DebertaV2Config,
    DistilBertConfig,
    RobertaConfig,
    XLMRobertaConfig,
)

from time_hub.distill.qkv import QKVCapture, adapter_for, encoder_layers, truncate_after

TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64)
CONFIGS = {
    "bert": BertConfig(**TINY),
    "roberta": RobertaConfig(**TINY, pad_token_id=1),
    "xlm-roberta": XLMRobertaConfig(**TINY, pad_token_id=1),
    "deberta-v2": DebertaV2Config(
        **TINY, relative_attention=True, position_buckets=8, pos_att_type=["p2c", "c2p"], position_biased_input=False
    ),
}


def _model(name):
    torch.manual_seed(0)
    return AutoModel.from_config(copy.deepcopy(CONFIGS[name])).eval()


def _inputs():
    ids = torch.randint(5, 99, (2, 7))
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0
    return ids, mask


@pytest.mark.parametrize("name", sorted(CONFIGS))
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


@pytest.mark.parametrize("name", sorted(CONFIGS))
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
    with pytest.raises(ValueError, match="model_type='distilbert'.*bert, deberta-v2, roberta, xlm-roberta"):
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
