"""The hidden-state term (TinyBERT) on hand-made tensors, its projection, and its recipe keys."""

import pytest
import torch
from transformers import BertConfig

from time_hub.distill.config import DistillationConfig
from time_hub.distill.hidden import hidden_mse_loss, hidden_projection


def _mask():
    return torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])


def test_identical_inputs_give_zero_loss():
    teacher = torch.randn(2, 4, 6)
    assert hidden_mse_loss(teacher, teacher.clone(), _mask()).item() == 0.0


def test_known_value_and_padding_ignored():
    teacher = torch.zeros(2, 4, 2)
    student = torch.zeros(2, 4, 2)
    student[0, 0] = torch.tensor([1.0, 1.0])  # example 0: token 0 error 1 per dim -> mean over 3 tokens = 1/3
    student[1, :2] = 2.0  # example 1: both real tokens error 4 per dim -> 4
    student[:, 3] = 100.0  # padding: ignored
    expected = (1 / 3 + 4) / 2
    assert hidden_mse_loss(teacher, student, _mask()).item() == pytest.approx(expected)


def test_gradient_reaches_student_and_projection_only():
    teacher = torch.randn(2, 4, 6, requires_grad=True)
    student = torch.randn(2, 4, 3, requires_grad=True)
    projection = hidden_projection(3, 6)
    hidden_mse_loss(teacher, projection(student), _mask()).backward()
    assert teacher.grad is None
    assert student.grad.abs().sum() > 0 and projection.weight.grad.abs().sum() > 0
    assert student.grad[0, 3].abs().sum() == 0 and student.grad[1, 2:].abs().sum() == 0  # padding gets nothing


def test_projection_is_the_identity_for_equal_widths():
    x = torch.randn(2, 4, 5)
    torch.testing.assert_close(hidden_projection(5, 5)(x), x)


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="do not match"):
        hidden_mse_loss(torch.zeros(2, 4, 6), torch.zeros(2, 4, 5), _mask())


def _config(tmp_path, **overrides):
    return DistillationConfig(
        output_dir=str(tmp_path), teacher_name_or_path="teacher", num_relation_heads=4, **overrides
    )


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"extra_relation_layers": ["6"]}, "extra_relation_layers: '6' is not a layer pair"),
        ({"hidden_layers": ["0:1"], "hidden_loss_weight": 1.0}, "hidden_layers: '0:1' is not a layer pair"),
        ({"hidden_loss_weight": -1.0}, "hidden_loss_weight must be a number >= 0"),
        ({"extra_relation_weight": "a"}, "extra_relation_weight must be a number >= 0"),
        ({"hidden_layers": ["2:1"]}, "hidden_loss_weight is 0"),
    ],
)
def test_bad_keys_are_named(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        _config(tmp_path, **overrides)


def test_resolve_defaults_and_ranges(tmp_path):
    teacher = BertConfig(num_hidden_layers=12, hidden_size=48, num_attention_heads=4)
    student = BertConfig(num_hidden_layers=3, hidden_size=32, num_attention_heads=4)
    plain = _config(tmp_path).resolve(teacher, student).to_dict()
    assert "hidden_layers" not in plain and "extra_relation_layers" not in plain  # old settings stay as they were
    assert _config(tmp_path, hidden_loss_weight=1.0).resolve(teacher, student).hidden_layers == [[12, 3]]
    settings = _config(tmp_path, hidden_loss_weight=0.5, extra_relation_layers=["6:2"]).resolve(teacher, student)
    assert settings.hidden_layers == [[12, 3]] and settings.hidden_loss_weight == 0.5
    assert settings.extra_relation_layers == [[6, 2]] and settings.extra_relation_weight == 1.0
    with pytest.raises(ValueError, match="hidden_layers: pair 13:3 is out of range"):
        _config(tmp_path, hidden_loss_weight=1.0, hidden_layers=["13:3"]).resolve(teacher, student)
    with pytest.raises(ValueError, match="repeat a layer pair"):
        _config(tmp_path, extra_relation_layers=["12:3"]).resolve(teacher, student)
