"""CoNLL-U reading, writing and splitting.

A sentence keeps every original line (comments such as `# sent_id` / `# text`, multiword-token ranges `1-2`,
empty nodes `8.1`) so that writing an unchanged file gives back the same bytes. Its syntactic words (integer IDs)
are parsed into `Word`s: these are what the CoNLL 2018 evaluation scores and what a model predicts. Writing renders
syntactic-word lines from the `Word` fields, so predicted columns replace the original ones and everything else is
copied through.

Malformed input raises one `ValueError` naming `file:line` and what is wrong, so a bad treebank fails loudly instead
of training on garbage. The same reader serves training, evaluation and prediction, so what one accepts the others
do: every sentence is a tree (exactly one word with HEAD 0, no cycle, heads inside the sentence), a file has at
least one sentence, text is UTF-8 (a byte-order mark is allowed).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from time_hub.tasks.ud_parser import find_cycle
from time_hub.text_file import excerpt, read_text

COLUMNS = ("id", "form", "lemma", "upos", "xpos", "feats", "head", "deprel", "deps", "misc")
PREDICTED_COLUMNS = ("upos", "xpos", "feats", "lemma", "head", "deprel")

_WORD_ID = re.compile(r"[1-9][0-9]*")
_RANGE_ID = re.compile(r"([1-9][0-9]*)-([1-9][0-9]*)")
_EMPTY_ID = re.compile(r"(0|[1-9][0-9]*)\.[1-9][0-9]*")
_HEAD = re.compile(r"0|[1-9][0-9]*")


@dataclass
class Word:
    """A syntactic word: one line with an integer ID. `line` is its 1-based line number in the source, for errors."""

    id: int
    form: str
    lemma: str
    upos: str
    xpos: str
    feats: str
    head: int
    deprel: str
    deps: str = "_"
    misc: str = "_"
    line: int = 0

    def to_line(self) -> str:
        return "\t".join(
            (str(self.id), self.form, self.lemma, self.upos, self.xpos, self.feats, str(self.head), self.deprel)
            + (self.deps, self.misc)
        )


@dataclass
class Sentence:
    """One sentence: `lines` are the original lines; `None` entries mark where `words` (in order) are rendered."""

    lines: list[str | None]
    words: list[Word]
    source: str = "<string>"
    line: int = 0  # 1-based line number of the sentence's first line

    @property
    def comments(self) -> list[str]:
        return [line for line in self.lines if line is not None and line.startswith("#")]

    def _comment_value(self, key: str) -> str | None:
        prefix = f"# {key} ="
        for comment in self.comments:
            if comment.startswith(prefix):
                return comment[len(prefix) :].strip()
        return None

    @property
    def sent_id(self) -> str | None:
        return self._comment_value("sent_id")

    @property
    def text(self) -> str | None:
        return self._comment_value("text")

    @property
    def forms(self) -> list[str]:
        return [w.form for w in self.words]

    def location(self) -> str:
        """`file:line (sent_id ...)` for error messages."""
        sid = self.sent_id
        return f"{self.source}:{self.line}" + (f" (sent_id {sid})" if sid else "")

    def to_text(self) -> str:
        """The sentence as CoNLL-U, ending with the blank line that terminates it."""
        words = iter(self.words)
        return "".join((line if line is not None else next(words).to_line()) + "\n" for line in self.lines) + "\n"


def _error(source: str, lineno: int, message: str) -> ValueError:
    return ValueError(f"{source}:{lineno}: {message}")


def check_tree(words: Sequence[Word], source: str) -> None:
    """The HEAD column forms one tree: exactly one word with HEAD 0 and no cycle (errors name `source:line`)."""
    roots = [word for word in words if word.head == 0]
    if len(roots) != 1:
        where = roots[1].line if roots else words[0].line
        ids = ", ".join(str(word.id) for word in roots) or "none"
        raise _error(source, where, f"sentence has {len(roots)} roots (words with HEAD 0: {ids}); a tree has one")
    cycle = find_cycle([0] + [word.head for word in words])
    if cycle is not None:
        ids = " -> ".join(str(i) for i in cycle)
        raise _error(source, words[cycle[0] - 1].line, f"the HEAD column contains a cycle ({ids})")


def _finish(lines: list[str | None], words: list[Word], ranges: list[tuple[int, int, int]], source: str, start: int):
    """Check sentence-level constraints (heads inside the sentence, ranges covering existing words)."""
    n = len(words)
    if n == 0:
        raise _error(source, start, "sentence has no syntactic words (lines with an integer ID)")
    for word in words:
        if word.head > n:
            raise _error(source, word.line, f"HEAD {word.head} points outside the sentence of {n} words")
        if word.head == word.id:
            raise _error(source, word.line, f"word {word.id} is its own HEAD")
    check_tree(words, source)
    for first, last, lineno in ranges:
        if last > n:
            raise _error(source, lineno, f"multiword token {first}-{last} covers words beyond the last word {n}")
    return Sentence(lines=lines, words=words, source=source, line=start)


def parse_conllu(text: str, source: str = "<string>") -> list[Sentence]:
    """Parse CoNLL-U text into sentences; `source` names the input in error messages."""
    sentences: list[Sentence] = []
    lines: list[str | None] = []
    words: list[Word] = []
    ranges: list[tuple[int, int, int]] = []
    start = 0
    raw_lines = text.split("\n")
    if raw_lines and raw_lines[-1] == "":
        raw_lines.pop()  # the newline ending the last line
    for lineno, raw in enumerate(raw_lines, start=1):
        line = raw[:-1] if raw.endswith("\r") else raw
        if not line.strip():
            if line:
                raise _error(source, lineno, "whitespace-only line; sentences must be separated by an empty line")
            if lines:
                sentences.append(_finish(lines, words, ranges, source, start))
                lines, words, ranges = [], [], []
            continue
        if not lines:
            start = lineno
        if line.startswith("#"):
            if words:
                raise _error(source, lineno, "comment line inside a sentence (comments must precede its words)")
            lines.append(line)
            continue
        cols = line.split("\t")
        if len(cols) != 10:
            raise _error(source, lineno, f"expected 10 tab-separated columns, got {len(cols)}")
        if any(c == "" for c in cols):
            raise _error(source, lineno, f"empty column {COLUMNS[cols.index('')].upper()} (use '_' for no value)")
        wid = cols[0]
        expected = len(words) + 1
        if _WORD_ID.fullmatch(wid):
            if int(wid) != expected:
                raise _error(source, lineno, f"word ID {wid} out of sequence, expected {expected}")
            if not _HEAD.fullmatch(cols[6]):
                raise _error(source, lineno, f"HEAD must be a non-negative integer, got {excerpt(cols[6])}")
            words.append(Word(int(wid), *cols[1:6], int(cols[6]), *cols[7:10], line=lineno))
            lines.append(None)
        elif m := _RANGE_ID.fullmatch(wid):
            first, last = int(m.group(1)), int(m.group(2))
            if first != expected or last <= first:
                raise _error(source, lineno, f"bad multiword token range {wid} (next word is {expected})")
            ranges.append((first, last, lineno))
            lines.append(line)
        elif m := _EMPTY_ID.fullmatch(wid):
            if int(m.group(1)) != expected - 1:
                raise _error(source, lineno, f"empty node {wid} must follow word {expected - 1}")
            lines.append(line)
        else:
            raise _error(
                source, lineno, f"bad ID {excerpt(wid)} (expected an integer, a range like 1-2 or a decimal like 8.1)"
            )
    if lines:
        sentences.append(_finish(lines, words, ranges, source, start))
    return sentences


def read_conllu(path: str | Path) -> list[Sentence]:
    """Read a CoNLL-U file; errors name `path:line`, an empty file is an error."""
    sentences = parse_conllu(read_text(path), source=str(path))
    if not sentences:
        raise ValueError(f"{path}: no sentences (the file is empty)")
    return sentences


def resolve_conllu(source: str | Path, split: str) -> Path:
    """The CoNLL-U file for `split` (train/dev/test) of `source`: a file; a UD release treebank folder (holding
    `<code>-ud-<split>.conllu`); a Hub dataset repository of raw CoNLL-U files, `org/name`; or UD's parquet conversion
    on the Hub, `org/name:config` (columns -> CoNLL-U, `rows_to_conllu`). (datasets >= 4 runs no loading scripts, so
    the old script-based `universal_dependencies` dataset does not load; raw files and parquet do.)"""
    path = Path(source)
    if path.is_file():
        return path
    if not path.is_dir():
        from time_hub.tasks.training import hub_dataset_id

        repo, _, config = hub_dataset_id(source, "org/name or org/name:config", with_config=True).partition(":")
        if config:
            return _parquet_split(repo, config, split)
        from huggingface_hub import snapshot_download

        path = Path(snapshot_download(repo, repo_type="dataset", allow_patterns=[f"*-ud-{split}.conllu"]))
    found = sorted(path.rglob(f"*-ud-{split}.conllu"))
    if len(found) != 1:
        names = [str(f.relative_to(path)) for f in found]
        raise FileNotFoundError(f"{source}: expected one *-ud-{split}.conllu, found {len(found)}: {names}")
    return found[0]


PARQUET_COLUMNS = ("tokens", "lemmas", "upos", "xpos", "feats", "head", "deprel", "deps", "misc")


def rows_to_conllu(rows: Iterable[dict], source: str) -> str:
    """Rows of UD's parquet conversion (idx, text and one list per column: tokens, lemmas, upos, xpos, feats, head,
    deprel, deps, misc; None for `_`) as CoNLL-U text, which `parse_conllu` then checks like any file."""
    blocks = []
    for i, row in enumerate(rows):
        missing = [c for c in PARQUET_COLUMNS if c not in row]
        if missing:
            raise ValueError(f"{source}[{i}]: missing columns {missing} (expected UD's parquet columns)")
        lines = [f"# sent_id = {row.get('idx') or i}"] + ([f"# text = {row['text']}"] if row.get("text") else [])
        for j in range(len(row["tokens"])):
            cells = [row[c][j] if j < len(row[c] or ()) else None for c in PARQUET_COLUMNS]
            lines.append("\t".join([str(j + 1)] + ["_" if v in (None, "") else str(v) for v in cells]))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n\n"


def _parquet_split(repo: str, config: str, split: str) -> Path:
    """`split` of UD's parquet conversion on the Hub, written once as a CoNLL-U file in the cache."""
    import tempfile

    from datasets import load_dataset

    from time_hub.atomic import write_text
    from time_hub.tasks.training import HUB_SPLITS

    hub_split = HUB_SPLITS.get(split, split)
    target = Path(tempfile.gettempdir()) / "time-hub-ud" / f"{repo.replace('/', '--')}--{config}--{hub_split}.conllu"
    if not target.is_file():
        source = f"{repo}:{config}[{hub_split}]"
        data = load_dataset(repo, config, split=hub_split)
        # ClassLabel columns (upos in the Hub's conversion) hold ids: back to their names
        labels = {c: getattr(getattr(data.features.get(c), "feature", None), "names", None) for c in PARQUET_COLUMNS}
        rows = ({**row, **{c: [names[v] for v in row[c]] for c, names in labels.items() if names}} for row in data)
        text = rows_to_conllu(rows, source)
        parse_conllu(text, source)  # the reader contract, before the file exists
        write_text(target, text)
    return target


def format_conllu(sentences: Iterable[Sentence]) -> str:
    return "".join(s.to_text() for s in sentences)


def write_conllu(path: str | Path, sentences: Iterable[Sentence]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(format_conllu(sentences), encoding="utf-8")
    return path


def sentence_tokens(sentence: Sentence) -> list[tuple[str, str, list[Word]]]:
    """(form, MISC, syntactic words) per token of the text: a multiword token's range line, else each word alone."""
    ranges = {}
    for line in sentence.lines:
        if line is not None and _RANGE_ID.fullmatch(line.split("\t", 1)[0]):
            fields = line.split("\t")
            first, last = map(int, fields[0].split("-"))
            ranges[first] = (last, fields[1], fields[9] if len(fields) > 9 else "_")
    tokens, inside = [], 0
    for word in sentence.words:
        if word.id <= inside:
            continue
        inside, form, misc = ranges.get(word.id, (word.id, word.form, word.misc))
        tokens.append((form, misc, [w for w in sentence.words if word.id <= w.id <= inside]))
    return tokens


def replace_columns(sentence: Sentence, **columns: Sequence) -> Sentence:
    """A copy of `sentence` whose syntactic words take the given predicted columns (one value per word).

    Accepted keywords: upos, xpos, feats, lemma, head, deprel. Other lines (comments, ranges, empty nodes) and the
    other columns are kept.
    """
    unknown = set(columns) - set(PREDICTED_COLUMNS)
    if unknown:
        raise ValueError(f"cannot replace columns {sorted(unknown)}; allowed: {PREDICTED_COLUMNS}")
    n = len(sentence.words)
    for name, values in columns.items():
        if len(values) != n:
            raise ValueError(f"{sentence.location()}: {len(values)} values for {name}, sentence has {n} words")
    words = [
        replace(word, **{name: values[i] for name, values in columns.items()}) for i, word in enumerate(sentence.words)
    ]
    return replace(sentence, lines=list(sentence.lines), words=words)


def split_sentences(
    sentences: Sequence[Sentence], eval_fraction: float = 0.2, seed: int | None = None
) -> tuple[list[Sentence], list[Sentence]]:
    """Split into (train, eval) deterministically: the first `1 - eval_fraction` / the rest when `seed` is None,
    otherwise a shuffle with `random.Random(seed)`, each part keeping the file order.

    Most treebanks here only ship a dev split, so experiments carve a train part out of it.
    """
    if not 0.0 < eval_fraction < 1.0:
        raise ValueError(f"eval_fraction must be in (0, 1), got {eval_fraction}")
    n = len(sentences)
    n_eval = round(n * eval_fraction)
    if n_eval == 0 or n_eval == n:
        raise ValueError(f"cannot split {n} sentences with eval_fraction={eval_fraction}: one part would be empty")
    order = list(range(n))
    if seed is not None:
        random.Random(seed).shuffle(order)
    eval_ids = set(order[n - n_eval :])
    train = [s for i, s in enumerate(sentences) if i not in eval_ids]
    held_out = [s for i, s in enumerate(sentences) if i in eval_ids]
    return train, held_out


def split_conllu_file(
    path: str | Path,
    train_path: str | Path,
    eval_path: str | Path,
    eval_fraction: float = 0.2,
    seed: int | None = None,
) -> tuple[int, int]:
    """Split a CoNLL-U file into two files (see `split_sentences`); returns the sentence counts (train, eval)."""
    train, held_out = split_sentences(read_conllu(path), eval_fraction, seed)
    write_conllu(train_path, train)
    write_conllu(eval_path, held_out)
    return len(train), len(held_out)
