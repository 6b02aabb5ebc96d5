import re

import pytest

from time_hub.arguments import RecipeError, parse
from time_hub.distill.command import DATACLASSES

# Every recipe file in the repository is parsed by tests/test_recipes.py (`time-hub recipes validate`).


def _write(tmp_path, text):
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return str(path)


TEXT = __file__  # any existing file: CorpusArguments checks that train_files exist
BASE = f"teacher_name_or_path: t\noutput_dir: out\ntrain_files: [{TEXT}]\nvalidation_holdout_lines: 10\n"


def test_overrides_win_and_yaml_float_strings_become_floats(tmp_path):
    recipe = _write(tmp_path, BASE + "learning_rate: 5e-4\nmax_steps: 10\n")
    (args, student, corpus), _ = parse(DATACLASSES, ["--config", recipe, "--max_steps", "20", "--packing=false"])
    assert args.learning_rate == 5e-4 and args.max_steps == 20 and corpus.packing is False
    assert args.relations == ["qq", "kk", "vv"] and student.student_shape == "xs"
    (args, _, _), _ = parse(DATACLASSES, ["--config", recipe, "--relations", "[qq, vv]"])
    assert args.relations == ["qq", "vv"]


def test_yes_and_no_are_strings_not_yaml_1_1_booleans(tmp_path):
    recipe = _write(tmp_path, BASE + "save_strategy: no\npacking: false\n")
    (args, _, corpus), _ = parse(DATACLASSES, ["--config", recipe, "--eval_strategy", "no"])
    assert args.eval_strategy == "no" and args.save_strategy == "no" and corpus.packing is False


@pytest.mark.parametrize(
    "extra, argv, message",
    [
        ("learning_rat: 1.0e-4\n", [], r"recipe.yaml: unknown key 'learning_rat' \(did you mean 'learning_rate'\?\)"),
        ("max_steps: ten\n", [], r"recipe.yaml: key 'max_steps': expected an integer, got 'ten'"),
        ("packing: 3\n", [], r"key 'packing': expected true or false"),
        ("", ["--num_relation_heads", "1.5"], r"the command line: key 'num_relation_heads': expected an integer"),
        ("", ["--nope", "1"], r"the command line: unknown key 'nope'"),
        ("student_shape: L4-H250-A4\n", [], r"recipe.yaml: StudentArguments: invalid student shape"),
        ("relations: [qq, xx]\n", [], r"recipe.yaml: DistillationConfig: relations must be"),
        ("", ["--max_steps"], r"--max_steps needs a value"),
    ],
)
def test_bad_recipes_name_file_and_key(tmp_path, extra, argv, message):
    with pytest.raises(RecipeError, match=message):
        parse(DATACLASSES, ["--config", _write(tmp_path, BASE + extra), *argv])


def test_unreadable_or_non_mapping_recipe(tmp_path):
    with pytest.raises(RecipeError, match="cannot read recipe"):
        parse(DATACLASSES, ["--config", str(tmp_path / "missing.yaml")])
    with pytest.raises(RecipeError, match="a recipe is a mapping"):
        parse(DATACLASSES, ["--config", _write(tmp_path, "- a\n- b\n")])
    with pytest.raises(RecipeError, match="not valid YAML"):
        parse(DATACLASSES, ["--config", _write(tmp_path, "a: [b\n")])


def test_a_key_given_twice_on_the_command_line_is_an_error():
    from time_hub.arguments import parse_overrides

    with pytest.raises(RecipeError, match="--quality given twice"):
        parse_overrides(["--quality", "a=1", "--quality", "b=2"])
    assert parse_overrides(["--quality", "[a=1, b=2]"]) == {"quality": ["a=1", "b=2"]}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (["--learning_rate", "-1e-3"], "key 'learning_rate': must be > 0, got -0.001"),
        (["--adam_beta1", "1.5"], "key 'adam_beta1': must be >= 0 and <= 1, got 1.5"),
        (["--per_device_train_batch_size", "0"], "key 'per_device_train_batch_size': must be >= 1, got 0"),
        (["--max_steps", "-2"], "key 'max_steps': must be >= -1, got -2"),
    ],
)
def test_numeric_keys_are_range_checked(override, message, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"teacher_name_or_path: t\ntrain_files: [{TEXT}]\noutput_dir: o\n")
    with pytest.raises(RecipeError, match=re.escape(message)):
        parse(DATACLASSES, ["--config", str(recipe), *override])
    recipe.write_text(recipe.read_text() + f"{override[0][2:]}: {override[1]}\n")
    with pytest.raises(RecipeError, match=re.escape(f"r.yaml: {message}")):
        parse(DATACLASSES, ["--config", str(recipe)])
