"""Lemmatization as classification over edit scripts (UDPipe style).

A rule turns a form into its lemma in two independent parts, so that rules generalise across words:

* an **edit** on the lower-cased form: keep the longest substring that form and lemma share, strip `p` characters
  before it and `s` characters after it, and put the lemma's own prefix/suffix there instead
  (`Flertallet -> flertal`: strip 3 at the end, add nothing);
* a **casing** script for the lemma: runs of upper/lower case, each starting at an offset counted from the start
  (first half of the word) or from the end (second half), e.g. `↓0` (all lower), `↑0¦↓1` (Title), `↑0` (UPPER).

Every (form, lemma) pair is expressible: when they share no character, or Unicode case mapping would not round-trip
(e.g. `ß` -> `SS`), the rule stores the lemma itself ("absolute" rule, rare). A rule is a short JSON string so it
can serve as a class label and be saved in a config file. `apply_rule` never fails: a rule that cannot apply to a
form (unparseable, stripping more than the form has, or leaving an empty lemma) yields the form unchanged.
"""

from __future__ import annotations

import json

UP, DOWN, SEP = "↑", "↓", "¦"
KEEP_CASE = ""  # casing script meaning "use the edited string as is"


def casing_script(lemma: str) -> str:
    """Runs of upper/lower case in `lemma`; caseless characters (digits, punctuation) continue the current run."""
    cases = [UP if c != c.lower() else DOWN if c != c.upper() else None for c in lemma]
    first = next((c for c in cases if c is not None), DOWN)
    runs, current = [], None
    for i, case in enumerate(cases):
        case = case or current or first
        if case != current:
            offset = i if i <= len(lemma) // 2 else i - len(lemma)
            runs.append(f"{case}{offset}")
            current = case
    return SEP.join(runs) or f"{DOWN}0"


def apply_casing(text: str, script: str) -> str:
    """Apply a casing script; each run goes from its offset to the end of the word, later runs overriding."""
    if script == KEEP_CASE:
        return text
    chars = list(text)
    for run in script.split(SEP):
        case, offset = run[0], int(run[1:])
        start = min(max(offset if offset >= 0 else len(chars) + offset, 0), len(chars))
        convert = str.upper if case == UP else str.lower
        chars[start:] = [convert(c) for c in chars[start:]]
    return "".join(chars)


def _longest_common_substring(a: str, b: str) -> tuple[int, int, int]:
    """(start in a, start in b, length) of the first longest common substring; length 0 if none."""
    best = (0, 0, 0)
    previous = [0] * (len(b) + 1)
    for i in range(1, len(a) + 1):
        current = [0] * (len(b) + 1)
        for j in range(1, len(b) + 1):
            if a[i - 1] == b[j - 1]:
                current[j] = previous[j - 1] + 1
                if current[j] > best[2]:
                    best = (i - current[j], j - current[j], current[j])
        previous = current
    return best


def _dump(parts: list) -> str:
    return json.dumps(parts, ensure_ascii=False, separators=(",", ":"))


def _edit_rule(casing: str, form: str, lemma: str) -> str:
    fs, ls, length = _longest_common_substring(form, lemma)
    if length == 0:
        return _dump([casing, lemma])
    return _dump([casing, fs, lemma[:ls], len(form) - fs - length, lemma[ls + length :]])


def lemma_rule(form: str, lemma: str) -> str:
    """The rule turning `form` into `lemma`; guaranteed: `apply_rule(form, lemma_rule(form, lemma)) == lemma`."""
    casing = casing_script(lemma)
    rule = _edit_rule(casing, form.lower(), lemma.lower())
    if apply_rule(form, rule) == lemma:
        return rule
    rule = _edit_rule(KEEP_CASE, form, lemma)  # case mapping does not round-trip for these characters
    if apply_rule(form, rule) == lemma:
        return rule
    return _dump([KEEP_CASE, lemma])


def apply_rule(form: str, rule: str) -> str:
    """Apply a rule made by `lemma_rule`; a rule that does not fit this form (or empties it) yields the form itself."""
    try:
        parts = json.loads(rule)
        casing = parts[0]
        if len(parts) == 2:
            return apply_casing(parts[1], casing)
        _, strip_start, prefix, strip_end, suffix = parts
        base = form.lower() if casing != KEEP_CASE else form
        if strip_start < 0 or strip_end < 0 or strip_start + strip_end > len(base):
            return form
        core = base[strip_start : len(base) - strip_end]
        return apply_casing(prefix + core + suffix, casing) or form  # CoNLL-U has no empty lemma
    except (ValueError, TypeError, IndexError, AttributeError):
        return form
