"""`time-hub finetune / evaluate / compare`: recipe parsing, dispatch, and the comparison table."""

import inspect
import json
from pathlib import Path

import pytest

from time_hub.arguments import RecipeError
from time_hub.cli import main as cli_main
from time_hub.tasks import commands
from time_hub.tasks.registry import TASKS
from time_hub.tasks.results import TaskResults

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes" / "finetune").glob("*.yaml"))
REQUIRED = ["--model", "m", "--train", "t.iob2", "--output_dir", "runs/x"]


def test_there_is_a_full_and_a_cpu_recipe_per_task():
    assert {p.name for p in RECIPES} >= {f"{t}{v}.yaml" for t in ("ud", "ner", "qa") for v in ("", "-cpu")}


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_every_finetune_recipe_parses(recipe):
    args, training = commands.parse_finetune(["--config", str(recipe), *REQUIRED])
    assert args.task == recipe.stem.split("-")[0]  # ud, ud-cpu, ud-cpu-silver: ud
    assert isinstance(training.learning_rate, float) and 0 < training.learning_rate < 1e-3
    assert training.load_best_model_at_end and training.metric_for_best_model in ("f1", "LAS")
    if recipe.stem.endswith("-cpu"):
        assert training.use_cpu and 0 < training.max_steps <= 500  # at most 4 epochs of 2,000 NER sentences


def test_command_line_overrides_the_recipe_and_floats_parse(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("task: ner\nlearning_rate: 5e-5\nmax_steps: 10\n")  # PyYAML reads 5e-5 as a string
    args, training = commands.parse_finetune(["--config", str(recipe), *REQUIRED, "--max_steps", "3"])
    assert training.learning_rate == 5e-5 and training.max_steps == 3 and training.output_dir == "runs/x"
    assert args.max_length is None  # unset: the task function's own default applies


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "task: ner\nlearning_rat: 1.0e-4\n",
            r"r\.yaml: unknown key 'learning_rat' \(did you mean 'learning_rate'\?\)",
        ),
        ("task: ner\nlearning_rate: fast\n", r"r\.yaml: key 'learning_rate': expected a number, got 'fast'"),
        ("task: pos\n", r"r\.yaml: key 'task': must be one of \['ud', 'ner', 'qa'\]"),
        ("task: ner\ndoc_stride: 64\n", r"r\.yaml.*doc_stride do not apply to task ner"),
    ],
)
def test_bad_recipes_name_file_and_key(tmp_path, text, message):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(text)
    with pytest.raises(RecipeError, match=message):
        commands.parse_finetune(["--config", str(recipe), *REQUIRED])


def test_output_dir_is_required_and_errors_exit_2(capsys, tmp_path):
    with pytest.raises(RecipeError, match="--output_dir is required"):
        commands.parse_finetune(["--task", "ner", "--model", "m", "--train", "t"])
    recipe = tmp_path / "r.yaml"
    recipe.write_text("task: ner\nbogus: 1\n")
    assert cli_main(["finetune", "--config", str(recipe), *REQUIRED]) == 2
    assert "r.yaml: unknown key 'bogus'" in capsys.readouterr().err


def test_task_modules_share_the_contract():
    """ud (written elsewhere), ner and qa take the arguments the dispatch passes."""
    for task in ("ud", "ner", "qa"):
        module = TASKS[task].load()
        finetune = list(inspect.signature(module.finetune).parameters)
        evaluate = list(inspect.signature(module.evaluate).parameters)
        assert finetune[:6] == [
            "model_name_or_path",
            "train_file",
            "dev_file",
            "output_dir",
            "training_args",
            "max_length",
        ]
        assert {"early_stopping_patience", "head_learning_rate"} <= set(finetune)
        assert evaluate[:5] == ["model_dir", "data_file", "split", "batch_size", "predictions_file"]


def test_bad_data_is_one_clear_error(capsys, tmp_path, tiny_bert_dir):
    bad = tmp_path / "bad.iob2"
    bad.write_text("1\tKjeld\tB-PER\n2\tChristensen\tX-PER\n")
    argv = [
        "--task",
        "ner",
        "--model",
        str(tiny_bert_dir),
        "--train",
        str(bad),
        "--output_dir",
        str(tmp_path / "o"),
    ]
    assert cli_main(["finetune", *argv]) == 2
    assert "bad.iob2:2: invalid IOB2 tag 'X-PER'" in capsys.readouterr().err


def test_finetune_then_evaluate_from_the_command_line(tiny_bert_dir, shared, tmp_path, capsys):
    da = shared / "data" / "ner" / "da"
    blocks = (da / "dev.iob2").read_text(encoding="utf-8").split("\n\n")
    train, dev = tmp_path / "train.iob2", tmp_path / "dev.iob2"
    train.write_text("\n\n".join(blocks[:48]) + "\n")
    dev.write_text("\n\n".join(blocks[48:72]) + "\n")
    out = tmp_path / "run"
    recipe = Path(__file__).resolve().parents[1] / "recipes" / "finetune" / "ner-cpu.yaml"
    argv = ["--config", str(recipe), "--model", str(tiny_bert_dir), "--train", str(train), "--dev", str(dev),
            "--output_dir", str(out), "--max_steps", "4", "--eval_steps", "2", "--save_steps", "2",
            "--max_length", "64", "--learning_rate", "1e-3"]  # fmt: skip
    assert commands.finetune_main(argv) == 0
    trained = TaskResults.load(out / "results.json")
    assert trained.extra["training"]["steps"] == 4 and trained.extra["training"]["max_length"] == 64

    results = tmp_path / "eval.json"
    argv = ["--task", "ner", "--model", str(out), "--data", str(dev), "--output", str(results)]
    capsys.readouterr()
    assert commands.evaluate_main(argv) == 0
    evaluated = TaskResults.load(results)
    assert evaluated.metrics == pytest.approx(trained.metrics)
    printed = capsys.readouterr().out
    assert json.loads(printed[printed.index("{\n") : printed.index("\n}") + 2]) == pytest.approx(evaluated.metrics)


def result(model: str, f1: float, em: float, params: int = 10_000_000, task: str = "qa", dataset: str = "x.json"):
    return TaskResults(task, dataset, "dev", {"exact_match": em, "f1": f1}, model, params, 1.0, 10)


def test_comparison_table_values():
    teacher, student = result("teacher", 80.0, 60.0, 39_500_000), result("student", 60.0, 45.0, 12_340_000)
    table = commands.format_comparison([("teacher", teacher), ("student", student)], teacher)
    lines = table.splitlines()
    assert lines[0].split() == ["model", "params", "(M)", "exact_match", "f1"]
    assert lines[1].split() == ["teacher", "39.5", "60.00", "(100.0%)", "80.00", "(100.0%)"]
    assert lines[2].split() == ["student", "12.3", "45.00", "(75.0%)", "60.00", "(75.0%)"]
    assert "retention = value / reference teacher" in table and "warning" not in table

    markdown = commands.format_comparison([("student", student)], teacher, markdown=True).splitlines()
    assert markdown[:3] == [
        "| model | params (M) | exact_match | f1 |",
        "|---|---:|---:|---:|",
        "| student | 12.3 | 45.00 (75.0%) | 60.00 (75.0%) |",
    ]


def test_comparison_edge_cases():
    zero = result("zero", 0.0, 0.0)
    missing = TaskResults("qa", "x.json", "dev", {"f1": 10.0}, "partial", 1, 1.0, 10)
    table = commands.format_comparison([("partial", missing)], zero)
    assert table.splitlines()[1].split() == ["partial", "0.0", "-", "10.00", "(n/a)"]
    other_data = result("other", 50.0, 40.0, dataset="y.json")
    assert "warning: the results come from different data" in commands.format_comparison([("o", other_data)], zero)
    ner = TaskResults("ner", "d.iob2", "dev", {"f1": 1.0}, "n", 1, 1.0, 1)
    with pytest.raises(ValueError, match="different tasks"):
        commands.format_comparison([("n", ner)], zero)


def test_compare_main(tmp_path, capsys):
    teacher = result("teacher", 80.0, 60.0).save(tmp_path / "teacher.json")
    student = result("student", 40.0, 30.0).save(tmp_path / "student.json")
    assert commands.compare_main([str(student), "--reference", str(teacher), "--markdown"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[2] == "| teacher | 10.0 | 60.00 (100.0%) | 80.00 (100.0%) |"  # the reference row comes first
    assert out[3] == "| student | 10.0 | 30.00 (50.0%) | 40.00 (50.0%) |"
    (tmp_path / "broken.json").write_text("{")
    assert cli_main(["compare", str(teacher), str(tmp_path / "broken.json")]) == 2
    assert "broken.json: not valid JSON" in capsys.readouterr().err
