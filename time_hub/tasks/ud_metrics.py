"""CoNLL 2018 shared-task metrics (UPOS, XPOS, UFeats, AllTags, Lemmas, UAS, LAS, MLAS, BLEX) for gold and
predicted CoNLL-U with the same tokenization.

Definitions follow the official `conll18_ud_eval.py` (v1.2):

* scores are F1 over syntactic words (integer IDs; empty nodes and multiword-token lines are ignored);
* DEPREL is compared on its universal part (before `:`), FEATS on universal features only (sorted);
* a gold lemma `_` matches any predicted lemma;
* MLAS and BLEX count only words whose DEPREL is a content relation (`CONTENT_DEPRELS`; the gold total counts gold
  content words, the system total predicted content words). MLAS also requires the same UPOS, UFeats and the same
  functional children (DEPREL in `FUNCTIONAL_DEPRELS`, compared by head, DEPREL, UPOS, UFeats, in word order);
  BLEX requires the lemma.

We do not tokenize, so words align by position; instead of the official character-level alignment we check that both
sides have the same sentences and word forms and raise a `ValueError` saying where they differ. With equal
tokenization the two alignments coincide, so the numbers are the official ones. Like the official script, every
sentence must be a tree with a single root.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from time_hub.tasks.conllu import Sentence, Word, check_tree, read_conllu

METRICS = ("UPOS", "XPOS", "UFeats", "AllTags", "Lemmas", "UAS", "LAS", "MLAS", "BLEX")

CONTENT_DEPRELS = frozenset(
    "nsubj obj iobj csubj ccomp xcomp obl vocative expl dislocated advcl advmod discourse nmod appos nummod acl amod "
    "conj fixed flat compound list parataxis orphan goeswith reparandum root dep".split()
)
FUNCTIONAL_DEPRELS = frozenset("aux cop mark det clf case cc".split())
UNIVERSAL_FEATURES = frozenset(
    "PronType NumType Poss Reflex Foreign Abbr Gender Animacy Number Case Definite Degree VerbForm Mood Tense Aspect "
    "Voice Evident Polarity Person Polite".split()
)


def universal_feats(feats: str) -> str:
    """FEATS restricted to the universal features, sorted (layered ones such as `Number[psor]` are dropped)."""
    return "|".join(sorted(f for f in feats.split("|") if f.split("=", 1)[0] in UNIVERSAL_FEATURES))


def universal_deprel(deprel: str) -> str:
    return deprel.split(":", 1)[0]


class _Word:
    """A word with the normalised columns the metrics compare."""

    __slots__ = ("upos", "xpos", "feats", "lemma", "head", "deprel", "functional_children")

    def __init__(self, word: Word):
        self.upos, self.xpos, self.lemma, self.head = word.upos, word.xpos, word.lemma, word.head
        self.feats = universal_feats(word.feats)
        self.deprel = universal_deprel(word.deprel)
        self.functional_children: list[int] = []


def _prepare(sentence: Sentence, side: str) -> list[_Word]:
    check_tree(sentence.words, f"{side} {sentence.source}")
    words = [_Word(w) for w in sentence.words]
    for i, w in enumerate(words, start=1):
        if w.head and w.deprel in FUNCTIONAL_DEPRELS:
            words[w.head - 1].functional_children.append(i)
    return words


def _check_alignment(gold: Sequence[Sentence], system: Sequence[Sentence]) -> None:
    if len(gold) != len(system):
        raise ValueError(f"gold has {len(gold)} sentences, system has {len(system)}: tokenization must be the same")
    for g, s in zip(gold, system):
        if g.forms != s.forms:
            diff = next(
                (i for i, (a, b) in enumerate(zip(g.forms, s.forms)) if a != b), min(len(g.forms), len(s.forms))
            )
            raise ValueError(
                f"gold {g.location()} and system {s.location()} differ at word {diff + 1}: "
                f"{len(g.forms)} vs {len(s.forms)} words, "
                f"forms {g.forms[diff : diff + 3]} vs {s.forms[diff : diff + 3]}"
            )


def _lemma(word: _Word, gold: _Word) -> str:
    return word.lemma if gold.lemma != "_" else "_"


def _mlas_key(word: _Word, words: list[_Word]) -> tuple:
    children = tuple((c, words[c - 1].deprel, words[c - 1].upos, words[c - 1].feats) for c in word.functional_children)
    return (word.head, word.deprel, word.upos, word.feats, children)


# Each metric: (key of a word given (word, its sentence, the aligned gold word), restricted to content words?)
_KEYS: dict[str, tuple[Callable[[_Word, list[_Word], _Word], object], bool]] = {
    "UPOS": (lambda w, ws, g: w.upos, False),
    "XPOS": (lambda w, ws, g: w.xpos, False),
    "UFeats": (lambda w, ws, g: w.feats, False),
    "AllTags": (lambda w, ws, g: (w.upos, w.xpos, w.feats), False),
    "Lemmas": (lambda w, ws, g: _lemma(w, g), False),
    "UAS": (lambda w, ws, g: w.head, False),
    "LAS": (lambda w, ws, g: (w.head, w.deprel), False),
    "MLAS": (lambda w, ws, g: _mlas_key(w, ws), True),
    "BLEX": (lambda w, ws, g: (w.head, w.deprel, _lemma(w, g)), True),
}


def ud_counts(gold: Sequence[Sentence], system: Sequence[Sentence]) -> dict[str, tuple[int, int, int]]:
    """Per metric: (correct, gold total, system total), the official script's counts."""
    _check_alignment(gold, system)
    counts = {name: [0, 0, 0] for name in METRICS}
    for g_sentence, s_sentence in zip(gold, system):
        g_words, s_words = _prepare(g_sentence, "gold"), _prepare(s_sentence, "system")
        for g, s in zip(g_words, s_words):
            g_content, s_content = g.deprel in CONTENT_DEPRELS, s.deprel in CONTENT_DEPRELS
            for name, (key, content_only) in _KEYS.items():
                c = counts[name]
                c[1] += g_content or not content_only
                c[2] += s_content or not content_only
                if (g_content or not content_only) and key(g, g_words, g) == key(s, s_words, g):
                    c[0] += 1
    return {name: (c[0], c[1], c[2]) for name, c in counts.items()}


def ud_scores(gold: Sequence[Sentence], system: Sequence[Sentence]) -> dict[str, float]:
    """F1 in percent (0-100) for each of `METRICS`; with equal tokenization UPOS..LAS equal accuracy."""
    return {
        name: 100.0 * 2 * correct / (g + s) if g + s else 0.0
        for name, (correct, g, s) in ud_counts(gold, system).items()
    }


def evaluate_files(gold_file: str | Path, system_file: str | Path) -> dict[str, float]:
    """`ud_scores` of two CoNLL-U files."""
    return ud_scores(read_conllu(gold_file), read_conllu(system_file))
