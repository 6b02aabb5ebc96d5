"""CoNLL 2018 raw-text scores: identical files, hand-made tokenization and sentence errors with counts worked out by
hand, multiword tokens aligned by their words, and agreement with the gold-tokenization scores."""

import pytest

from time_hub.tasks.conllu import parse_conllu, read_conllu
from time_hub.tasks.ud_metrics import ud_scores
from time_hub.tasks.ud_raw_metrics import METRICS, raw_text_scores


def conllu(*sentences: list[tuple]) -> list:
    """Sentences of (id, form, upos, head, deprel) rows; a row with id 'a-b' is a multiword token line."""
    text = ""
    for rows in sentences:
        for row in rows:
            i, form = row[0], row[1]
            if "-" in str(i):
                text += f"{i}\t{form}\t_\t_\t_\t_\t_\t_\t_\t_\n"
            else:
                upos, head, deprel = row[2:]
                text += f"{i}\t{form}\t{form.lower()}\t{upos}\t_\t_\t{head}\t{deprel}\t_\t_\n"
        text += "\n"
    return parse_conllu(text)


GOLD = conllu(
    [(1, "Hun", "PRON", 2, "nsubj"), (2, "læser", "VERB", 0, "root"), (3, ".", "PUNCT", 2, "punct")],
    [(1, "Han", "PRON", 2, "nsubj"), (2, "skriver", "VERB", 0, "root"), (3, ".", "PUNCT", 2, "punct")],
)


def test_identical_files_score_100(shared):
    gold = read_conllu(shared / "data" / "ud" / "fr" / "dev.conllu")[:200]  # French: multiword tokens (du, des)
    assert raw_text_scores(gold, gold) == {name: 100.0 for name in METRICS}


def test_same_tokenization_gives_the_gold_tokenization_scores(shared):
    gold = read_conllu(shared / "data" / "ud" / "da" / "dev.conllu")[:50]
    system = [s for s in gold]  # a system with the gold tokens and one changed tag
    system = parse_conllu("".join(s.to_text() for s in system).replace("\tNOUN\t", "\tVERB\t", 1))
    raw, gold_tok = raw_text_scores(gold, system), ud_scores(gold, system)
    for name in ("UPOS", "XPOS", "UFeats", "AllTags", "Lemmas", "UAS", "LAS"):
        assert raw[name] == pytest.approx(gold_tok[name])


def test_merged_sentences_and_a_split_token():
    # one sentence instead of two, and "skriver" cut into "skri" + "ver"
    system = conllu(
        [(1, "Hun", "PRON", 2, "nsubj"), (2, "læser", "VERB", 0, "root"), (3, ".", "PUNCT", 2, "punct"),
         (4, "Han", "PRON", 5, "nsubj"), (5, "skri", "VERB", 2, "parataxis"), (6, "ver", "X", 5, "goeswith"),
         (7, ".", "PUNCT", 5, "punct")],
    )  # fmt: skip
    scores = raw_text_scores(GOLD, system)
    assert scores["Sentences"] == pytest.approx(0.0)  # 0 of 2 gold, 0 of 1 system spans match
    assert scores["Tokens"] == pytest.approx(100 * 2 * 5 / (6 + 7))  # all but "skriver" match
    assert scores["Words"] == scores["Tokens"]
    # aligned: Hun læser . Han . ; UPOS right on all 5; heads: Hun->læser ok, læser root ok, . ok, Han->? gold head
    # "skriver" is not aligned, so Han is wrong; the last "." (gold head skriver) wrong too: 3 of 6 / 7
    assert scores["UPOS"] == pytest.approx(100 * 2 * 5 / 13)
    assert scores["UAS"] == pytest.approx(100 * 2 * 3 / 13)


def test_multiword_tokens_align_by_their_words():
    gold = conllu([(1, "Vamos", "VERB", 0, "root"), ("2-3", "del"), (2, "de", "ADP", 4, "case"),
                   (3, "el", "DET", 4, "det"), (4, "cine", "NOUN", 1, "obl")])  # fmt: skip
    unexpanded = conllu([(1, "Vamos", "VERB", 0, "root"), (2, "del", "ADP", 3, "case"), (3, "cine", "NOUN", 1, "obl")])
    scores = raw_text_scores(gold, unexpanded)
    assert scores["Tokens"] == 100.0 and scores["Sentences"] == 100.0
    assert scores["Words"] == pytest.approx(100 * 2 * 2 / (4 + 3))  # Vamos, cine
    wrong = conllu([(1, "Vamos", "VERB", 0, "root"), ("2-3", "del"), (2, "de", "ADP", 4, "case"),
                    (3, "le", "DET", 4, "det"), (4, "cine", "NOUN", 1, "obl")])  # fmt: skip
    assert raw_text_scores(gold, wrong)["Words"] == pytest.approx(75.0)  # "el" vs "le" does not align


def test_different_text_names_the_place():
    system = conllu([(1, "Hun", "PRON", 0, "root")])
    with pytest.raises(ValueError, match="differ at character 3"):
        raw_text_scores(GOLD, system)
