"""Hidden-state distillation (TinyBERT, arXiv 1909.10351), as a pure tensor function and its projection.

    L_hidden = 1/B sum_b 1/|b| sum_{i real} 1/d_t || W h^S_{b,i} + c - h^T_{b,i} ||^2

where W (d_t x d_s) and c are learned with the student and thrown away after distillation (the published student is
a stock encoder). Padded tokens contribute nothing. Used on the student's last layer it trains the parameters that the
relation loss never reaches (the last layer's attention output, FFN and LayerNorms, whose output is the encoder's
`last_hidden_state`).
"""

from __future__ import annotations

import torch
from torch import nn


def hidden_mse_loss(teacher: torch.Tensor, student: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean over examples of the mean over real tokens of the per-dimension squared error, in fp32.

    `teacher` and `student` (already projected to the teacher's width) are `(batch, seq, hidden)`; `attention_mask`
    is `(batch, seq)` with 1 for real tokens. Gradients flow to `student` only.
    """
    if teacher.shape != student.shape or teacher.shape[:2] != attention_mask.shape:
        raise ValueError(
            f"teacher {tuple(teacher.shape)}, projected student {tuple(student.shape)} and attention_mask "
            f"{tuple(attention_mask.shape)} do not match"
        )
    mask = attention_mask.to(torch.float32)
    per_token = (student.float() - teacher.detach().float()).pow(2).mean(-1)
    per_example = (per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1)
    return per_example.mean()


def hidden_projection(student_size: int, teacher_size: int) -> nn.Linear:
    """Student width -> teacher width; the identity (zero bias) when the widths agree, so that a student cut out of
    the teacher starts where it is."""
    projection = nn.Linear(student_size, teacher_size)
    if student_size == teacher_size:
        with torch.no_grad():
            projection.weight.copy_(torch.eye(teacher_size))
            projection.bias.zero_()
    return projection
