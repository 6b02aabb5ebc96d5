"""SQuAD v1.1 EM/F1 against values computed by hand from the official script's definitions."""

import pytest

from time_hub.tasks.squad_metric import exact_match_score, f1_score, normalize_answer, squad_scores


def test_normalize_answer_follows_the_official_steps():
    assert normalize_answer("The  Quick, brown FOX!") == "quick brown fox"
    assert normalize_answer("an apple a day") == "apple day"
    assert normalize_answer("theatre and anthem") == "theatre and anthem"  # articles only as whole words
    assert normalize_answer("«Paris»") == "«paris»"  # only ASCII punctuation is removed, as in the official script
    assert normalize_answer("6½ sacks") == "6½ sacks"


def test_exact_match_ignores_case_articles_and_punctuation():
    assert exact_match_score("the Denver Broncos.", "Denver Broncos") == 1.0
    assert exact_match_score("Denver", "Denver Broncos") == 0.0


def test_f1_by_hand():
    # prediction -> [cat, sat, on, mat], gold -> [cat, on, mat]: 3 shared, P = 3/4, R = 1, F1 = 6/7
    assert f1_score("the cat sat on the mat", "a cat on a mat") == pytest.approx(6 / 7)
    # repeated tokens count with multiplicity: [new, new, york] vs [new, york]: 2 shared, P 2/3, R 1, F1 0.8
    assert f1_score("New new York", "New York") == pytest.approx(0.8)
    assert f1_score("Paris", "London") == 0.0
    # official quirk: an answer that normalises to nothing matches EM but has F1 0
    assert exact_match_score("", "the") == 1.0
    assert f1_score("", "the") == 0.0


def test_squad_scores_max_over_golds_and_missing_predictions():
    references = {"q1": ["Denver Broncos"], "q2": ["cat on mat", "the mat"], "q3": ["308"]}
    predictions = {"q1": "denver broncos", "q2": "the cat sat on the mat", "extra": "ignored"}
    scores = squad_scores(predictions, references)
    # q1: EM 1, F1 1; q2: max(6/7, 2/5) = 6/7, EM 0; q3 unanswered: 0
    assert scores["exact_match"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(100 * (1 + 6 / 7) / 3)


def test_squad_scores_rejects_empty_input():
    with pytest.raises(ValueError, match="no reference"):
        squad_scores({}, {})
    with pytest.raises(ValueError, match="'q1' has no gold"):
        squad_scores({"q1": "x"}, {"q1": []})
