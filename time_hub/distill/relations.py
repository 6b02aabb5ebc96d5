r"""MiniLMv2 self-attention relation loss (Wang et al. 2021, arXiv 2012.15828), as pure tensor functions.

For a relation XY (qq, kk or vv) the hidden states X, Y (batch, seq, hidden) of one layer are split into A_r relation
heads of size d_r = hidden / A_r (teacher and student each use their own d_r), and

    R_XY[a] = softmax(X_a Y_a^T / sqrt(d_r))        (keys axis; padded keys get probability 0)

    L_XY = 1/B  sum_b  1/(A_r |b|)  sum_{a, i real, j}  KL(R^T_XY[b, a, i, :] || R^S_XY[b, a, i, :])

where |b| is the number of real tokens of example b. Padded queries contribute nothing and padded keys have zero
probability, so appending padding never changes an example's loss. The KL is computed in fp32 (also under autocast)
and in chunks of relation heads, each chunk recomputed in the backward pass, so memory stays bounded by one chunk.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

RELATIONS = ("qq", "kk", "vv")
_INDEX = {"q": 0, "k": 1, "v": 2}
# Elements of one (batch, heads, seq, seq) fp32 tensor per chunk; ~5 such tensors are alive at once.
_CHUNK_ELEMENTS = 2**26


def minilm_relation_loss(
    teacher_qkv: Sequence[torch.Tensor],
    student_qkv: Sequence[torch.Tensor],
    attention_mask: torch.Tensor,
    num_relation_heads: int,
    relations: Sequence[str] = RELATIONS,
    heads_per_chunk: int | None = None,
) -> dict[str, torch.Tensor]:
    """Return `{"qq", "kk", "vv" (those requested), "loss": their sum}` as scalar tensors.

    `teacher_qkv`/`student_qkv` are `(q, k, v)` tuples of `(batch, seq, hidden)` tensors (hidden sizes may differ,
    each divisible by `num_relation_heads`); `attention_mask` is `(batch, seq)` with 1 for real tokens. Gradients
    flow to the student tensors only. `heads_per_chunk` defaults to what keeps one chunk at ~256 MB of fp32.
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
    if heads_per_chunk is None:
        heads_per_chunk = max(1, _CHUNK_ELEMENTS // max(1, batch * seq * seq))

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
            heads_per_chunk,
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
    heads_per_chunk: int,
) -> torch.Tensor:
    """Sum over heads, real queries and keys of KL(teacher || student) relations: a `(batch,)` fp32 tensor."""
    tx, ty, sx, sy = (split_heads(t, num_relation_heads) for t in (teacher_x, teacher_y, student_x, student_y))
    recompute = torch.is_grad_enabled() and (student_x.requires_grad or student_y.requires_grad)
    total = student_x.new_zeros(student_x.shape[0], dtype=torch.float32)
    for start in range(0, num_relation_heads, heads_per_chunk):
        part = slice(start, start + heads_per_chunk)
        args = (tx[:, part], ty[:, part], sx[:, part], sy[:, part], mask)
        # Recomputing each chunk in backward keeps only one chunk's (B, h, S, S) tensors alive at a time.
        total = total + (checkpoint(_chunk_kl, *args, use_reentrant=False) if recompute else _chunk_kl(*args))
    return total


def split_heads(hidden: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(batch, seq, hidden) -> (batch, heads, seq, hidden / heads)."""
    batch, seq, size = hidden.shape
    return hidden.view(batch, seq, num_heads, size // num_heads).transpose(1, 2)


def log_relation(x: torch.Tensor, y: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
    """log softmax(x y^T / sqrt(d)) over keys, in fp32; padded keys get probability exactly 0."""
    x, y = x.float(), y.float()
    scores = torch.matmul(x, y.transpose(-1, -2)) / math.sqrt(x.shape[-1])
    scores = scores.masked_fill(~key_mask[:, None, None, :], torch.finfo(scores.dtype).min)
    return F.log_softmax(scores, dim=-1)


def _chunk_kl(tx: torch.Tensor, ty: torch.Tensor, sx: torch.Tensor, sy: torch.Tensor, mask: torch.Tensor):
    with torch.autocast(device_type=sx.device.type, enabled=False):
        teacher_log = log_relation(tx, ty, mask)
        student_log = log_relation(sx, sy, mask)
        kl = torch.exp(teacher_log) * (teacher_log - student_log)
        # Keys: zero where padded (avoids 0 * huge); queries: padded rows contribute nothing.
        kl = kl.masked_fill(~mask[:, None, None, :], 0.0) * mask[:, None, :, None]
        return kl.sum(dim=(1, 2, 3))
