r"""MiniLMv2 self-attention relation loss (Wang et al. 2021, arXiv 2012.15828), as pure tensor functions.

For a relation XY (qq, kk or vv) the hidden states X, Y (batch, seq, hidden) of one layer are split into A_r relation
heads of size d_r = hidden / A_r (teacher and student each use their own d_r), and

    R_XY[a] = softmax(X_a Y_a^T / sqrt(d_r))        (keys axis; padded keys get probability 0)

    L_XY = 1/B  sum_b  1/(A_r |b|)  sum_{a, i real, j}  KL(R^T_XY[b, a, i, :] || R^S_XY[b, a, i, :])

where |b| is the number of real tokens of example b. Padded queries contribute nothing and padded keys have zero
probability, so appending padding never changes an example's loss. The KL is computed in fp32 (also under autocast)
and in chunks of relation heads; the backward pass recomputes one chunk at a time and uses the closed-form gradient
dL/dz_student = p_student - p_teacher (per real query row), so memory stays bounded by one chunk and no (B, A, S, S)
intermediate is ever kept for autograd.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

RELATIONS = ("qq", "kk", "vv")
_INDEX = {"q": 0, "k": 1, "v": 2}
# Elements of one (batch, heads, seq, seq) fp32 block; ~4 such tensors are alive at once. On CPU the loss is bound by
# memory traffic: 16 MB blocks ran 2x faster than 256 MB ones (batch 32 x 512, 32 heads); GPUs prefer fewer kernels.
BLOCK_ELEMENTS = {"cpu": 2**22, "cuda": 2**26}


def minilm_relation_loss(
    teacher_qkv: Sequence[torch.Tensor],
    student_qkv: Sequence[torch.Tensor],
    attention_mask: torch.Tensor,
    num_relation_heads: int,
    relations: Sequence[str] = RELATIONS,
    block_elements: int | None = None,
) -> dict[str, torch.Tensor]:
    """Return `{"qq", "kk", "vv" (those requested), "loss": their sum}` as scalar tensors.

        `teacher_qkv`/`student_qkv` are `(q, k, v)` tuples of `(batch, seq, hidden)` tensors (hidden sizes may differ,
        each divisible by `num_relation_heads`); `attention_mask` is `(batch, seq)` with 1 for real tokens. Gradients
        flow to the student tensors only. The work runs in blocks of examples x heads of at most `block_elements`
    relation entries (default per device type, see `BLOCK_ELEMENTS`), each trimmed to its longest real sequence.
    """
    unknown = [r for r in relations if r not in RELATIONS]
    if unknown or not relations or len(set(relations)) != len(relations):
        raise ValueError(f"relations must be distinct names from {RELATIONS}, got {tuple(relations)}")
    batch, seq = attention_mask.shape
    for who, qkv in (("teacher", teacher_qkv), ("student", student_qkv)):
        for t in qkv:
            if t.shape[:2] != (batch, seq):
                raise ValueError(f"{who} Q/K/V shape {tuple(t.shape)} does not match attention_mask {(batch, seq)}")
            if t.shape[-1] % num_relation_heads:
                raise ValueError(
                    f"{who} hidden size {t.shape[-1]} is not divisible by num_relation_heads={num_relation_heads}"
                )
    if block_elements is None:
        block_elements = BLOCK_ELEMENTS.get(attention_mask.device.type, BLOCK_ELEMENTS["cuda"])

    mask = attention_mask.bool()
    real_tokens = mask.sum(-1).clamp(min=1).float()
    out: dict[str, torch.Tensor] = {}
    for name in relations:
        x, y = _INDEX[name[0]], _INDEX[name[1]]
        per_example = relation_kl_per_example(
            teacher_qkv[x].detach(),
            teacher_qkv[y].detach(),
            student_qkv[x],
            student_qkv[y],
            mask,
            num_relation_heads,
            block_elements,
        )
        out[name] = (per_example / (num_relation_heads * real_tokens)).mean()
    out["loss"] = torch.stack([out[name] for name in relations]).sum()
    return out


def relation_kl_per_example(
    teacher_x: torch.Tensor,
    teacher_y: torch.Tensor,
    student_x: torch.Tensor,
    student_y: torch.Tensor,
    mask: torch.Tensor,
    num_relation_heads: int,
    block_elements: int,
) -> torch.Tensor:
    """Sum over heads, real queries and keys of KL(teacher || student) relations: a `(batch,)` fp32 tensor."""
    tx, ty, sx, sy = (split_heads(t, num_relation_heads) for t in (teacher_x, teacher_y, student_x, student_y))
    return _RelationKL.apply(tx, ty, sx, sy, mask, block_elements)


def blocks(mask: torch.Tensor, heads: int, block_elements: int) -> list[tuple[slice, slice, int]]:
    """(examples, heads, length) blocks covering the batch; `length` drops trailing positions that are padding in
    every example of the block (padding may sit on either side: only all-padding tail columns are cut)."""
    seq = mask.shape[1]
    heads_per_block = min(heads, max(1, block_elements // (seq * seq)))
    examples_per_block = max(1, block_elements // (heads_per_block * seq * seq))
    real = mask.any(dim=0) if mask.shape[0] <= examples_per_block else None
    out = []
    for b in range(0, mask.shape[0], examples_per_block):
        rows = slice(b, b + examples_per_block)
        columns = (real if real is not None else mask[rows].any(dim=0)).nonzero()
        length = int(columns.max()) + 1 if len(columns) else 1
        out += [(rows, slice(h, h + heads_per_block), length) for h in range(0, heads, heads_per_block)]
    return out


class _RelationKL(torch.autograd.Function):
    """Blocked relation KL with a recomputing, closed-form backward (inputs are (batch, heads, seq, d))."""

    @staticmethod
    def forward(ctx, tx, ty, sx, sy, mask, block_elements):
        ctx.save_for_backward(tx, ty, sx, sy, mask)
        ctx.blocks = blocks(mask, sx.shape[1], block_elements)
        total = torch.zeros(sx.shape[0], dtype=torch.float32, device=sx.device)
        with torch.autocast(device_type=sx.device.type, enabled=False):
            for rows, heads, n in ctx.blocks:
                m = mask[rows, :n]
                teacher_log = log_relation(tx[rows, heads, :n], ty[rows, heads, :n], m)
                student_log = log_relation(sx[rows, heads, :n], sy[rows, heads, :n], m)
                # Padded keys: teacher probability is exactly 0 and both logs are finite, so they add 0.
                per_row = (torch.exp(teacher_log) * (teacher_log - student_log)).sum(-1)
                total[rows] += (per_row * m[:, None, :]).sum(dim=(1, 2))
        return total

    @staticmethod
    def backward(ctx, grad_total):
        tx, ty, sx, sy, mask = ctx.saved_tensors
        grad_x = torch.zeros(sx.shape, dtype=torch.float32, device=sx.device)
        grad_y = torch.zeros(sy.shape, dtype=torch.float32, device=sy.device)
        scale = 1.0 / math.sqrt(sx.shape[-1])
        with torch.autocast(device_type=sx.device.type, enabled=False):
            for rows, heads, n in ctx.blocks:
                m = mask[rows, :n]
                x, y = sx[rows, heads, :n].float(), sy[rows, heads, :n].float()
                # d total_b / d student_logit[b, a, i, j] = p_s - p_t on real query rows i, 0 elsewhere.
                grad_logits = torch.exp(log_relation(x, y, m))
                grad_logits -= torch.exp(log_relation(tx[rows, heads, :n], ty[rows, heads, :n], m))
                grad_logits *= (grad_total[rows, None].float() * m * scale)[:, None, :, None]
                grad_x[rows, heads, :n] = grad_logits @ y
                grad_y[rows, heads, :n] = grad_logits.transpose(-1, -2) @ x
        return None, None, grad_x.to(sx.dtype), grad_y.to(sy.dtype), None, None


def split_heads(hidden: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(batch, seq, hidden) -> (batch, heads, seq, hidden / heads), contiguous so head chunks slice cheaply."""
    batch, seq, size = hidden.shape
    return hidden.view(batch, seq, num_heads, size // num_heads).transpose(1, 2).contiguous()


def log_relation(x: torch.Tensor, y: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
    """log softmax(x y^T / sqrt(d)) over keys, in fp32; padded keys get probability exactly 0."""
    scores = torch.matmul(x.float() / math.sqrt(x.shape[-1]), y.float().transpose(-1, -2))
    scores.masked_fill_(~key_mask[:, None, None, :], torch.finfo(scores.dtype).min)
    return F.log_softmax(scores, dim=-1)
