"""Tree decoding: always a tree with one root child, and the best one (checked against brute force)."""

import itertools

import numpy as np
import pytest

from time_hub.tasks.ud_parser import decode_tree, find_cycle, is_tree


def tree_score(scores: np.ndarray, heads) -> float:
    return float(sum(scores[h, d] for d, h in enumerate(heads, start=1)))


def brute_force_best(scores: np.ndarray) -> float:
    n = scores.shape[0] - 1
    return max(tree_score(scores, heads) for heads in itertools.product(range(n + 1), repeat=n) if is_tree(heads))


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_matches_brute_force_on_small_sentences(n):
    rng = np.random.default_rng(n)
    for _ in range(25 if n < 5 else 6):
        scores = rng.normal(size=(n + 1, n + 1))
        heads = decode_tree(scores)
        assert is_tree(heads)
        assert tree_score(scores, heads) == pytest.approx(brute_force_best(scores))


@pytest.mark.parametrize("n", [6, 20, 80])
def test_random_scores_always_give_a_single_rooted_tree(n):
    rng = np.random.default_rng(n)
    for _ in range(10):
        scores = np.log(rng.dirichlet(np.ones(n + 1) * 0.3, size=n + 1) + 1e-12)  # peaked, like trained log-probs
        heads = decode_tree(scores)
        assert heads.shape == (n,) and is_tree(heads)
        assert np.sum(heads == 0) == 1 and find_cycle(np.concatenate([[0], heads])) is None


def test_root_constraint_beats_the_unconstrained_optimum():
    # every word prefers the root: the unconstrained best tree has three root children
    scores = np.full((4, 4), -5.0)
    scores[0, 1:] = 0.0
    scores[1, 2] = scores[1, 3] = -1.0
    heads = decode_tree(scores)
    assert list(heads) == [0, 1, 1]


def test_cycle_is_contracted():
    # 1 <-> 2 strongly prefer each other; the root must break the cycle at the cheaper edge
    scores = np.full((3, 3), -10.0)
    scores[1, 2], scores[2, 1] = 5.0, 4.0
    scores[0, 1], scores[0, 2] = 1.0, 0.0
    assert list(decode_tree(scores)) == [0, 1]


def test_constant_scores_still_decode_to_a_tree():
    assert is_tree(decode_tree(np.zeros((30, 30))))


@pytest.mark.parametrize("bad", [np.zeros((1, 1)), np.zeros((3, 4)), np.array([[0.0, np.nan], [0.0, 0.0]])])
def test_bad_score_matrices_are_rejected(bad):
    with pytest.raises(ValueError):
        decode_tree(bad)


@pytest.mark.parametrize(
    ("heads", "expected"),
    [([0], True), ([0, 1, 2], True), ([2, 0, 2], True), ([0, 0], False), ([2, 1], False), ([0, 3, 2], False),
     ([0, 2], False), ([0, 5], False), ([], False)],
)  # fmt: skip
def test_is_tree(heads, expected):
    assert is_tree(heads) is expected
