"""CoNLL 2018 shared-task scores of a system that tokenized raw text itself: Tokens, Sentences, Words, then UPOS,
XPOS, UFeats, AllTags, Lemmas, UAS and LAS over the aligned words.

The alignment follows the official `conll18_ud_eval.py` (v1.2), re-implemented from its description: both files
must spell the same characters once whitespace is removed; tokens, sentences and words are spans of that character
stream. Tokens and sentences score when their spans match exactly. Words outside multiword tokens align when their
spans match; inside a stretch where either side has a multiword token, words align by the longest common subsequence
of their lower-cased forms. Every score is an F1 over gold and system counts (in %); a word's head is right when the
gold head's aligned word is the system head (root counts as aligned to root). `ud_metrics` scores the same tags when
the tokenization is the gold one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from time_hub.tasks.conllu import Sentence, check_tree, sentence_tokens
from time_hub.tasks.ud_metrics import universal_deprel, universal_feats

METRICS = ("Tokens", "Sentences", "Words", "UPOS", "XPOS", "UFeats", "AllTags", "Lemmas", "UAS", "LAS")


@dataclass
class _Word:
    start: int  # span of its token (a multiword token's words share it)
    end: int
    multiword: bool
    form: str
    upos: str
    xpos: str
    feats: str
    lemma: str
    deprel: str
    head: int  # index into the side's word list, -1 for the root


def _read(
    sentences: Sequence[Sentence], side: str
) -> tuple[str, list[tuple[int, int]], list[tuple[int, int]], list[_Word]]:
    """(characters without whitespace, token spans, sentence spans, words) of one side."""
    chars: list[str] = []
    tokens, spans, words, position = [], [], [], 0
    for sentence in sentences:
        check_tree(sentence.words, f"{side} {sentence.source}")
        base, first_char = len(words), position
        for form, _, token_words in sentence_tokens(sentence):
            form = "".join(form.split())
            start, position = position, position + len(form)
            chars.append(form)
            tokens.append((start, position))
            for w in token_words:
                words.append(_Word(start, position, len(token_words) > 1, w.form, w.upos, w.xpos,
                                   universal_feats(w.feats), w.lemma, universal_deprel(w.deprel),
                                   base + w.head - 1 if w.head else -1))  # fmt: skip
        spans.append((first_char, position))
    return "".join(chars), tokens, spans, words


def _beyond(words: list[_Word], i: int, end: int) -> bool:
    if i >= len(words):
        return True
    return words[i].start >= end if words[i].multiword else words[i].end > end


def _extend(word: _Word, end: int) -> int:
    return word.end if word.multiword and word.end > end else end


def align(gold: list[_Word], system: list[_Word]) -> dict[int, int]:
    """Gold word index -> aligned system word index."""
    aligned: dict[int, int] = {}
    gi = si = 0
    while gi < len(gold) and si < len(system):
        if gold[gi].multiword or system[si].multiword:
            if gold[gi].multiword:
                end = gold[gi].end
                if not system[si].multiword and system[si].start < gold[gi].start:
                    si += 1
            else:
                end = system[si].end
                if not gold[gi].multiword and gold[gi].start < system[si].start:
                    gi += 1
            gs, ss = gi, si
            while not _beyond(gold, gi, end) or not _beyond(system, si, end):
                if gi < len(gold) and (si >= len(system) or gold[gi].start <= system[si].start):
                    end, gi = _extend(gold[gi], end), gi + 1
                else:
                    end, si = _extend(system[si], end), si + 1
            g_forms = [w.form.lower() for w in gold[gs:gi]]
            s_forms = [w.form.lower() for w in system[ss:si]]
            lcs = [[0] * (len(s_forms) + 1) for _ in range(len(g_forms) + 1)]  # of suffixes
            for g in reversed(range(len(g_forms))):
                for s in reversed(range(len(s_forms))):
                    lcs[g][s] = (
                        lcs[g + 1][s + 1] + 1 if g_forms[g] == s_forms[s] else max(lcs[g + 1][s], lcs[g][s + 1])
                    )
            g = s = 0
            while g < len(g_forms) and s < len(s_forms):
                if g_forms[g] == s_forms[s]:
                    aligned[gs + g] = ss + s
                    g, s = g + 1, s + 1
                elif lcs[g][s] == lcs[g + 1][s]:
                    g += 1
                else:
                    s += 1
        elif (gold[gi].start, gold[gi].end) == (system[si].start, system[si].end):
            aligned[gi] = si
            gi, si = gi + 1, si + 1
        elif gold[gi].start <= system[si].start:
            gi += 1
        else:
            si += 1
    return aligned


def _f1(correct: int, gold: int, system: int) -> float:
    return 100.0 * 2 * correct / (gold + system) if gold + system else 0.0


def raw_text_scores(gold: Sequence[Sentence], system: Sequence[Sentence]) -> dict[str, float]:
    """F1 (%) of each of `METRICS`; a ValueError names where the two sides stop spelling the same text."""
    g_chars, g_tokens, g_sentences, g_words = _read(gold, "gold")
    s_chars, s_tokens, s_sentences, s_words = _read(system, "system")
    if g_chars != s_chars:
        at = next((i for i, (a, b) in enumerate(zip(g_chars, s_chars)) if a != b), min(len(g_chars), len(s_chars)))
        raise ValueError(
            f"gold and system text differ at character {at} (whitespace removed): "
            f"{g_chars[at : at + 20]!r} vs {s_chars[at : at + 20]!r}"
        )
    scores = {
        "Tokens": _f1(len(set(g_tokens) & set(s_tokens)), len(g_tokens), len(s_tokens)),
        "Sentences": _f1(len(set(g_sentences) & set(s_sentences)), len(g_sentences), len(s_sentences)),
    }
    aligned = align(g_words, s_words)
    scores["Words"] = _f1(len(aligned), len(g_words), len(s_words))
    keys = {
        "UPOS": lambda w: w.upos,
        "XPOS": lambda w: w.xpos,
        "UFeats": lambda w: w.feats,
        "AllTags": lambda w: (w.upos, w.xpos, w.feats),
    }
    for name, key in keys.items():
        correct = sum(key(g_words[g]) == key(s_words[s]) for g, s in aligned.items())
        scores[name] = _f1(correct, len(g_words), len(s_words))
    lemmas = sum(g_words[g].lemma in ("_", s_words[s].lemma) for g, s in aligned.items())
    scores["Lemmas"] = _f1(lemmas, len(g_words), len(s_words))
    heads = {g: aligned.get(g_words[g].head, "not aligned") if g_words[g].head >= 0 else -1 for g in aligned}
    uas = [g for g, s in aligned.items() if heads[g] == s_words[s].head]
    scores["UAS"] = _f1(len(uas), len(g_words), len(s_words))
    las = sum(g_words[g].deprel == s_words[aligned[g]].deprel for g in uas)
    scores["LAS"] = _f1(las, len(g_words), len(s_words))
    return scores
