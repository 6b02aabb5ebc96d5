"""Fuzz: mutated CoNLL-U, IOB2, SQuAD and recipe files are either read correctly or refused with one error line that
names the file -- never another exception (which `time-hub` would print as a traceback).

A seeded generator (reproducible: the case id is the seed) applies one to three mutations to a valid file cut from
../shared: dropped / duplicated columns, random bytes, truncation, CRLF line ends, a byte-order mark, a huge line,
unicode edge cases (combining marks, right-to-left and zero-width characters, NUL, lone line separators), dropped,
duplicated or swapped lines, tabs turned into spaces. Accepted output is checked against the format's contract.
Sizes: CASES per format (1,120 cases) plus 20 refused ones through `time-hub`; about 20 s on the 2-core machine.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from time_hub.arguments import parse
from time_hub.cli import main
from time_hub.distill.command import DATACLASSES
from time_hub.tasks.conllu import read_conllu
from time_hub.tasks.ner import read_iob2
from time_hub.tasks.qa import read_squad
from time_hub.tasks.ud_parser import is_tree

CASES = {"conllu": 400, "iob2": 400, "squad": 200, "recipe": 120}
UNICODE = ["\u0301", "\u200b", "\u200f", "\u202e", "\ufeff", "\x00", "\u2028", "\x85", "\U0001f600", "\udcff"]


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def drop_column(data: bytes, rng: random.Random) -> bytes:
    lines = _lines(data)
    i = rng.randrange(len(lines))
    cols = lines[i].split(b"\t")
    if len(cols) > 1:
        del cols[rng.randrange(len(cols))]
    lines[i] = b"\t".join(cols)
    return b"\n".join(lines)


def duplicate_column(data: bytes, rng: random.Random) -> bytes:
    lines = _lines(data)
    i = rng.randrange(len(lines))
    cols = lines[i].split(b"\t")
    j = rng.randrange(len(cols))
    cols.insert(j, cols[j])
    lines[i] = b"\t".join(cols)
    return b"\n".join(lines)


def random_bytes(data: bytes, rng: random.Random) -> bytes:
    at = rng.randrange(len(data) + 1)
    return data[:at] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 40))) + data[at:]


def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


def crlf(data: bytes, rng: random.Random) -> bytes:
    return data.replace(b"\n", b"\r\n")


def bom(data: bytes, rng: random.Random) -> bytes:
    return b"\xef\xbb\xbf" + data


def huge_line(data: bytes, rng: random.Random) -> bytes:
    lines = _lines(data)
    lines.insert(rng.randrange(len(lines) + 1), b"x" * 1_000_000)
    return b"\n".join(lines)


def unicode_edge(data: bytes, rng: random.Random) -> bytes:
    text = data.decode("utf-8", errors="surrogateescape")
    at = rng.randrange(len(text) + 1)
    text = text[:at] + rng.choice(UNICODE) * rng.randint(1, 3) + text[at:]
    return text.encode("utf-8", errors="surrogatepass")


def drop_line(data: bytes, rng: random.Random) -> bytes:
    lines = _lines(data)
    del lines[rng.randrange(len(lines))]
    return b"\n".join(lines)


def duplicate_line(data: bytes, rng: random.Random) -> bytes:
    lines = _lines(data)
    i = rng.randrange(len(lines))
    lines.insert(i, lines[i])
    return b"\n".join(lines)


def swap_lines(data: bytes, rng: random.Random) -> bytes:
    lines = _lines(data)
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    lines[i], lines[j] = lines[j], lines[i]
    return b"\n".join(lines)


def tabs_to_spaces(data: bytes, rng: random.Random) -> bytes:
    lines = _lines(data)
    i = rng.randrange(len(lines))
    lines[i] = lines[i].replace(b"\t", b" ")
    return b"\n".join(lines)


MUTATIONS = [
    drop_column, duplicate_column, random_bytes, truncate, crlf, bom, huge_line, unicode_edge, drop_line,
    duplicate_line, swap_lines, tabs_to_spaces,
]  # fmt: skip


def mutate(data: bytes, seed: int) -> tuple[bytes, list[str]]:
    rng = random.Random(seed)
    applied = rng.sample(MUTATIONS, rng.randint(1, 3))
    for mutation in applied:
        data = mutation(data, rng) if data else data
    return data, [m.__name__ for m in applied]


# The valid files the mutations start from (small, so that a mutation often hits something that matters).
def conllu_seed(shared: Path) -> bytes:
    text = (shared / "data" / "ud" / "es" / "dev.conllu").read_text(encoding="utf-8")  # has multiword tokens
    return ("\n\n".join(text.split("\n\n")[:4]).strip() + "\n\n").encode()


def iob2_seed(shared: Path) -> bytes:
    text = (shared / "data" / "ner" / "da" / "dev.iob2").read_text(encoding="utf-8")
    return ("\n\n".join(text.split("\n\n")[:6]).strip() + "\n\n").encode()


def squad_seed(shared: Path) -> bytes:
    data = json.loads((shared / "data" / "qa" / "xquad" / "xquad.en.json").read_text(encoding="utf-8"))
    paragraph = data["data"][0]["paragraphs"][0]
    small = {"version": "1.1", "data": [{"title": "t", "paragraphs": [{**paragraph, "qas": paragraph["qas"][:3]}]}]}
    return json.dumps(small, ensure_ascii=False, indent=1).encode()


def recipe_seed(shared: Path) -> bytes:
    return (
        f"teacher_name_or_path: {shared / 'teachers' / 'me5-small'}\n"
        "student_shape: L3-H384-A12\nstudent_init: prune\nstudent_layers: first-3\nmax_steps: 0\nteacher_layer: 3\n"
        "num_relation_heads: 48\nlearning_rate: 1.0e-4\nper_device_train_batch_size: 16\nwarmup_steps: 20\n"
        f"train_files: [{shared / 'data' / 'text' / 'da.txt'}]\nvalidation_holdout_lines: 200\nuse_cpu: true\n"
        "output_dir: runs/fuzz\nreport_to: none\n"
    ).encode()


# What an accepted file must satisfy.
def check_conllu(sentences) -> None:
    assert sentences
    for sentence in sentences:
        assert [w.id for w in sentence.words] == list(range(1, len(sentence.words) + 1))
        assert is_tree([w.head for w in sentence.words])


def check_iob2(sentences) -> None:
    assert sentences
    for sentence in sentences:
        assert len(sentence.tokens) == len(sentence.tags) > 0 and all(t.strip() for t in sentence.tokens)
        previous = "O"
        for tag in sentence.tags:
            assert tag == "O" or (tag[:2] in ("B-", "I-") and tag[2:])
            assert not tag.startswith("I-") or previous[2:] == tag[2:]  # repaired to B- otherwise
            previous = tag


def check_squad(examples) -> None:
    assert examples
    for example in examples:
        for text, start in zip(example.answers, example.answer_starts):
            assert start >= 0 and example.context[start : start + len(text)] == text


def read_recipe(path: Path):
    return parse(DATACLASSES, ["--config", str(path)])[0]


def check_recipe(parsed) -> None:
    args, student, corpus = parsed
    assert args.learning_rate > 0 and args.max_steps >= -1 and corpus.train_files


FORMATS: dict[str, tuple[Callable, Callable, Callable, str]] = {
    "conllu": (conllu_seed, read_conllu, check_conllu, ".conllu"),
    "iob2": (iob2_seed, read_iob2, check_iob2, ".iob2"),
    "squad": (squad_seed, read_squad, check_squad, ".json"),
    "recipe": (recipe_seed, read_recipe, check_recipe, ".yaml"),
}


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_mutated_inputs_are_read_or_refused_in_one_line(fmt, shared, tmp_path):
    make_seed, read, check, suffix = FORMATS[fmt]
    valid = make_seed(shared)
    path = tmp_path / f"input{suffix}"
    path.write_bytes(valid)
    check(read(path))  # the unmutated seed is accepted
    outcomes = {"accepted": 0, "refused": 0}
    for case in range(CASES[fmt]):
        data, applied = mutate(valid, seed=case)
        path.write_bytes(data)
        where = f"{fmt} case {case} ({', '.join(applied)})"
        try:
            result = read(path)
        except ValueError as error:  # InputError, RecipeError and the readers' errors are all ValueErrors
            message = str(error)
            assert str(path) in message, f"{where}: the error does not name the file: {message[:300]}"
            assert "\n" not in message and len(message) < 600, f"{where}: not one short line: {message[:300]}"
            outcomes["refused"] += 1
        except Exception as error:  # noqa: BLE001 - the point of the test
            pytest.fail(f"{where}: {type(error).__name__} escaped the reader: {str(error)[:300]}")
        else:
            check(result)
            outcomes["accepted"] += 1
    assert outcomes["refused"] > CASES[fmt] // 4 and outcomes["accepted"] > 0, outcomes  # the mutations bite


def cli_argv(fmt: str, path: str, model: str, out: str) -> list[str]:
    """`time-hub` reading the file as training data."""
    if fmt == "recipe":
        return ["distill", "--config", path, "--output_dir", out]
    task = {"conllu": "ud", "iob2": "ner", "squad": "qa"}[fmt]
    return ["finetune", "--task", task, "--model", model, "--train", path, "--output_dir", out]


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_refused_inputs_are_one_line_exit_2_and_nothing_written(fmt, shared, tmp_path, tiny_bert_dir, capsys):
    """The command line's view of the same cases: the first few refused ones of each format, through `time-hub`."""
    make_seed, read, _, suffix = FORMATS[fmt]
    valid, path, out = make_seed(shared), tmp_path / f"input{suffix}", tmp_path / "out"
    tried = 0
    for case in range(CASES[fmt]):
        path.write_bytes(mutate(valid, seed=case)[0])
        try:
            read(path)
            continue
        except ValueError:
            pass
        assert main(cli_argv(fmt, str(path), str(tiny_bert_dir), str(out))) == 2, f"{fmt} case {case}"
        err = capsys.readouterr().err
        assert "Traceback" not in err and len([x for x in err.splitlines() if x.startswith("error: ")]) == 1, err
        assert str(path) in err and not out.exists(), f"{fmt} case {case}: {err[-300:]}"
        tried += 1
        if tried == 5:
            break
    assert tried == 5
