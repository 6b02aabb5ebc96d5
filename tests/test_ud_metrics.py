"""CoNLL 2018 metrics on hand-made gold/system files whose scores are worked out by hand below."""

import pytest

from time_hub.tasks.conllu import parse_conllu
from time_hub.tasks.ud_metrics import evaluate_files, ud_counts, ud_scores

GOLD = """# sent_id = s1
1\tThe\tthe\tDET\tDT\tDefinite=Def|PronType=Art\t2\tdet\t_\t_
2\tcat\tcat\tNOUN\tNN\tNumber=Sing\t3\tnsubj\t_\t_
3\tsat\tsit\tVERB\tVBD\tMood=Ind|Tense=Past|VerbForm=Fin\t0\troot\t_\t_
4\ton\ton\tADP\tIN\t_\t5\tcase\t_\t_
5\tit\tit\tPRON\tPRP\tCase=Acc|Number=Sing|Person=3|PronType=Prs\t3\tobl\t_\t_

# sent_id = s2
1-2\tdu\t_\t_\t_\t_\t_\t_\t_\t_
1\tde\tde\tADP\tP\t_\t3\tcase\t_\t_
2\tle\tle\tDET\tD\tGender=Masc|Typo=Yes\t3\tdet\t_\t_
3\tpain\tpain\tNOUN\tN\tGender=Masc|Number=Sing\t0\troot\t_\t_
3.1\tmange\t_\tVERB\t_\t_\t_\t_\t0:root\t_
4\tfrais\t_\tADJ\tA\tNumber=Sing\t3\tamod\t_\t_

"""

# Differences from GOLD (s1 has 3 content words: cat, sat, it; s2 has 2: pain, frais):
#  s1 w2  lemma cats (wrong); deprel nsubj:pass (universal part nsubj: still correct)
#  s1 w4  XPOS RP (wrong); head 3 instead of 5 (wrong): "on" becomes a functional child of "sat", not of "it"
#  s1 w5  deprel obj instead of obl (wrong)
#  s2 w2  lemma la (wrong); Typo=No differs only in a non-universal feature (UFeats still correct)
#  s2 w3  same features in another order (correct)
#  s2 w4  lemma fraîche but the gold lemma is "_" (counts as correct); Number=Plur (wrong); amod:x (correct)
#  the empty node 3.1 is missing (ignored)
SYSTEM = """# sent_id = s1
1\tThe\tthe\tDET\tDT\tDefinite=Def|PronType=Art\t2\tdet\t_\t_
2\tcat\tcats\tNOUN\tNN\tNumber=Sing\t3\tnsubj:pass\t_\t_
3\tsat\tsit\tVERB\tVBD\tMood=Ind|Tense=Past|VerbForm=Fin\t0\troot\t_\t_
4\ton\ton\tADP\tRP\t_\t3\tcase\t_\t_
5\tit\tit\tPRON\tPRP\tCase=Acc|Number=Sing|Person=3|PronType=Prs\t3\tobj\t_\t_

# sent_id = s2
1-2\tdu\t_\t_\t_\t_\t_\t_\t_\t_
1\tde\tde\tADP\tP\t_\t3\tcase\t_\t_
2\tle\tla\tDET\tD\tGender=Masc|Typo=No\t3\tdet\t_\t_
3\tpain\tpain\tNOUN\tN\tNumber=Sing|Gender=Masc\t0\troot\t_\t_
4\tfrais\tfraîche\tADJ\tA\tNumber=Plur\t3\tamod:x\t_\t_

"""


def test_hand_computed_scores():
    counts = ud_counts(parse_conllu(GOLD), parse_conllu(SYSTEM))
    # 9 words. XPOS: s1w4 wrong. UFeats: s2w4 wrong. AllTags: both. Lemmas: s1w2, s2w2 wrong.
    # UAS: s1w4 wrong. LAS: s1w4 and s1w5 wrong.
    assert counts["UPOS"] == (9, 9, 9)
    assert counts["XPOS"] == (8, 9, 9)
    assert counts["UFeats"] == (8, 9, 9)
    assert counts["AllTags"] == (7, 9, 9)
    assert counts["Lemmas"] == (7, 9, 9)
    assert counts["UAS"] == (8, 9, 9)
    assert counts["LAS"] == (7, 9, 9)
    # MLAS over content words: cat correct (its functional child "The" is the same), sat wrong (it gained the
    # functional child "on"), it wrong (deprel), pain correct (children de/le with equal universal features),
    # frais wrong (features).
    assert counts["MLAS"] == (2, 5, 5)
    # BLEX: cat wrong (lemma), sat correct, it wrong (deprel), pain correct, frais correct (gold lemma "_").
    assert counts["BLEX"] == (3, 5, 5)

    scores = ud_scores(parse_conllu(GOLD), parse_conllu(SYSTEM))
    assert scores["UPOS"] == 100.0
    assert scores["XPOS"] == pytest.approx(800 / 9)
    assert scores["LAS"] == pytest.approx(700 / 9)
    assert scores["MLAS"] == pytest.approx(40.0)
    assert scores["BLEX"] == pytest.approx(60.0)


def test_system_content_words_count_on_the_system_side():
    gold = "1\ta\ta\tDET\t_\t_\t2\tdet\t_\t_\n2\tb\tb\tNOUN\t_\t_\t0\troot\t_\t_\n\n"
    system = gold.replace("\tdet\t", "\tnmod\t")  # the system calls the determiner a content word
    counts = ud_counts(parse_conllu(gold), parse_conllu(system))
    # gold content words: b; system content words: a, b. MLAS: b lost its functional child -> 0 correct.
    assert counts["MLAS"] == (0, 1, 2)
    assert counts["BLEX"] == (1, 1, 2)  # F1 = 2 * 1 / (1 + 2)
    scores = ud_scores(parse_conllu(gold), parse_conllu(system))
    assert scores["BLEX"] == pytest.approx(200 / 3)
    assert scores["LAS"] == 50.0


def test_identical_files_score_100(shared, tmp_path):
    path = shared / "data" / "ud" / "es" / "dev.conllu"  # multiword tokens
    assert set(evaluate_files(path, path).values()) == {100.0}


@pytest.mark.parametrize(
    ("system", "message"),
    [
        (SYSTEM.replace("\tfrais\t", "\tfresh\t"), "differ at word 4"),
        (SYSTEM.split("\n\n")[0] + "\n\n", "gold has 2 sentences, system has 1"),
        (SYSTEM.replace("Fin\t0\troot", "Fin\t2\troot").replace("Art\t2\tdet", "Art\t0\tdet"), "cycle"),  # 2 <-> 3
        (SYSTEM.replace("\t3\tobj\t", "\t0\tobj\t"), "sentence has 2 roots"),
    ],
)  # fmt: skip
def test_mismatches_and_broken_trees_raise(tmp_path, system, message):
    gold_path, system_path = tmp_path / "gold.conllu", tmp_path / "system.conllu"
    gold_path.write_text(GOLD)
    system_path.write_text(system)
    with pytest.raises(ValueError, match=message) as error:
        evaluate_files(gold_path, system_path)
    assert str(system_path) in str(error.value) or "sentences" in str(error.value)
