"""SQuAD v1.1 exact match and F1, computed exactly as the official `evaluate-v1.1.py` script does.

Re-implemented because `evaluate.load("squad")` fetches its code from the Hub, which tests and offline users cannot
reach. Answers are normalised (lower case, punctuation and the articles a/an/the removed, whitespace collapsed); a
question scores the maximum over its gold answers; a question without a prediction scores 0.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """Lower-case, drop ASCII punctuation, drop the articles a/an/the, collapse whitespace (official order)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match_score(prediction: str, gold: str) -> float:
    """1.0 when the normalised strings are equal, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction: str, gold: str) -> float:
    """Bag-of-tokens F1 between the normalised prediction and gold answer (0.0 when they share no token)."""
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """Corpus EM and F1 in percent over every question of `references` (question id -> gold answer texts).

    Questions missing from `predictions` count as wrong, as in the official script; predictions for ids that are not
    in `references` are ignored.
    """
    if not references:
        raise ValueError("squad_scores: no reference questions to score")
    exact = f1 = 0.0
    for qid, golds in references.items():
        if not golds:
            raise ValueError(f"squad_scores: question {qid!r} has no gold answer")
        if qid not in predictions:
            continue
        prediction = predictions[qid]
        exact += max(exact_match_score(prediction, gold) for gold in golds)
        f1 += max(f1_score(prediction, gold) for gold in golds)
    return {"exact_match": 100.0 * exact / len(references), "f1": 100.0 * f1 / len(references)}
