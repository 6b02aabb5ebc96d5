import math

import pytest
import torch

from time_hub.distill.relations import minilm_relation_loss


def _qkv(batch, seq, hidden, seed, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(batch, seq, hidden, generator=g, requires_grad=requires_grad) for _ in range(3))


def _reference(teacher_qkv, student_qkv, mask, heads, relations=("qq", "kk", "vv")):
    """Straightforward per-example, per-head loop over real tokens only: the MiniLMv2 equation as written."""
    out = {}
    for name in relations:
        x, y = "qkv".index(name[0]), "qkv".index(name[1])
        per_example = []
        for b in range(mask.shape[0]):
            n = int(mask[b].sum())
            total = 0.0
            tx, ty = teacher_qkv[x][b, :n], teacher_qkv[y][b, :n]
            sx, sy = student_qkv[x][b, :n], student_qkv[y][b, :n]
            dt, ds = tx.shape[-1] // heads, sx.shape[-1] // heads
            for a in range(heads):
                t = torch.softmax(tx[:, a * dt : (a + 1) * dt] @ ty[:, a * dt : (a + 1) * dt].T / math.sqrt(dt), -1)
                s = torch.softmax(sx[:, a * ds : (a + 1) * ds] @ sy[:, a * ds : (a + 1) * ds].T / math.sqrt(ds), -1)
                total = total + (t * (t.log() - s.log())).sum()
            per_example.append(total / (heads * n))
        out[name] = torch.stack(per_example).mean()
    return out


def _mask(lengths, seq):
    return (torch.arange(seq)[None, :] < torch.tensor(lengths)[:, None]).long()


def test_identical_inputs_give_zero_loss():
    qkv = _qkv(3, 10, 32, seed=0)
    losses = minilm_relation_loss(qkv, qkv, _mask([10, 7, 3], 10), num_relation_heads=4)
    for name in ("qq", "kk", "vv", "loss"):
        assert losses[name].abs().item() < 1e-6


def test_matches_per_example_reference_with_different_sizes():
    mask = _mask([9, 5, 1, 7], 9)
    teacher, student = _qkv(4, 9, 48, seed=1), _qkv(4, 9, 24, seed=2)
    losses = minilm_relation_loss(teacher, student, mask, num_relation_heads=6)
    expected = _reference(teacher, student, mask, heads=6)
    for name in ("qq", "kk", "vv"):
        torch.testing.assert_close(losses[name], expected[name], rtol=1e-5, atol=1e-6)
        assert losses[name] > 0
    torch.testing.assert_close(losses["loss"], sum(expected.values()))


@pytest.mark.parametrize("heads", [1, 3, 12])
def test_head_counts_and_blocking_agree(heads):
    mask = _mask([8, 4, 6], 8)
    teacher, student = _qkv(3, 8, 36, seed=3), _qkv(3, 8, 12, seed=4)
    whole = minilm_relation_loss(teacher, student, mask, heads, block_elements=10**6)
    for student_tensor in student:
        student_tensor.requires_grad_()
    tiny = minilm_relation_loss(teacher, student, mask, heads, block_elements=1)  # one example x one head a block
    torch.testing.assert_close(whole["loss"], tiny["loss"].detach())
    tiny["loss"].backward()
    grads = [t.grad.clone() for t in student]
    for t in student:
        t.grad = None
    minilm_relation_loss(teacher, student, mask, heads, block_elements=10**6)["loss"].backward()
    for g, t in zip(grads, student):
        torch.testing.assert_close(g, t.grad)
    torch.testing.assert_close(
        whole["qq"], _reference(teacher, [t.detach() for t in student], mask, heads, ("qq",))["qq"]
    )


def test_appending_padding_does_not_change_the_loss():
    mask = _mask([6, 3], 6)
    teacher, student = _qkv(2, 6, 16, seed=5), _qkv(2, 6, 8, seed=6)
    base = minilm_relation_loss(teacher, student, mask, num_relation_heads=2)

    def pad(qkv, extra):
        return tuple(torch.cat([t, 100 * torch.randn(t.shape[0], extra, t.shape[2])], dim=1) for t in qkv)

    padded = minilm_relation_loss(pad(teacher, 5), pad(student, 5), torch.cat([mask, torch.zeros(2, 5)], 1), 2)
    for name in ("qq", "kk", "vv"):
        torch.testing.assert_close(padded[name], base[name])


def test_left_padding_gives_the_same_loss_as_right_padding():
    lengths, seq = [6, 3], 6
    teacher, student = _qkv(2, seq, 16, seed=12), _qkv(2, seq, 8, seed=13)
    right = minilm_relation_loss(teacher, student, _mask(lengths, seq), num_relation_heads=2)

    def to_left(qkv):
        return tuple(torch.stack([t[b].roll(seq - n, dims=0) for b, n in enumerate(lengths)]) for t in qkv)

    left_mask = _mask(lengths, seq).flip(-1)
    left = minilm_relation_loss(to_left(teacher), to_left(student), left_mask, num_relation_heads=2)
    torch.testing.assert_close(left["loss"], right["loss"])


def test_gradients_reach_the_student_only_and_match_the_reference():
    mask = _mask([5, 2], 5)
    teacher = _qkv(2, 5, 8, seed=7, requires_grad=True)
    student = _qkv(2, 5, 8, seed=8, requires_grad=True)
    minilm_relation_loss(teacher, student, mask, 2, block_elements=1)["loss"].backward()
    assert all(t.grad is None for t in teacher)
    got = [t.grad.clone() for t in student]
    student_ref = tuple(t.detach().clone().requires_grad_() for t in student)
    sum(_reference(tuple(t.detach() for t in teacher), student_ref, mask, 2).values()).backward()
    for g, ref in zip(got, student_ref):
        torch.testing.assert_close(g, ref.grad, rtol=1e-4, atol=1e-6)
    # Padded positions of the student get no gradient at all.
    assert all(g[1, 2:].abs().max() == 0 for g in got)


def test_subset_of_relations_and_fp32_under_autocast():
    qkv_t, qkv_s = _qkv(2, 6, 16, seed=9), _qkv(2, 6, 16, seed=10)
    mask = _mask([6, 4], 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = minilm_relation_loss(qkv_t, qkv_s, mask, 4, relations=("vv",))
    assert set(losses) == {"vv", "loss"} and losses["loss"].dtype == torch.float32
    torch.testing.assert_close(losses["vv"], _reference(qkv_t, qkv_s, mask, 4, ("vv",))["vv"])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"relations": ("qk",)}, "relations must be"),
        ({"relations": ()}, "relations must be"),
        ({"num_relation_heads": 5}, "not divisible by num_relation_heads=5"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, message):
    qkv = _qkv(1, 4, 8, seed=11)
    args = {"num_relation_heads": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        minilm_relation_loss(qkv, qkv, torch.ones(1, 4), **args)
