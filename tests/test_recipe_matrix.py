"""Every recipe in the repository parses and validates; the release matrix is complete; broken recipes name file and
key; `recipes plan` and `recipes new` work; `time-hub run` chains the stages and skips what is up to date."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from time_hub import recipe_matrix
from time_hub.arguments import RecipeError, load_recipe
from time_hub.cli import main as cli_main
from time_hub.pipeline import RunArguments, run, summary_text

ROOT = Path(__file__).resolve().parents[1]
LANGUAGES = "en de fr es it nl da sv fi et hu pl cs el ga ur".split()


@pytest.fixture(autouse=True)
def at_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # recipes name their files relative to the repository root


@pytest.mark.parametrize("path", recipe_matrix.all_recipes(ROOT / "recipes"), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_recipe_in_the_repository_validates(path):
    assert recipe_matrix.validate_file(path.relative_to(ROOT))


def test_the_release_matrix_is_complete():
    for lang in LANGUAGES:
        assert (ROOT / "recipes" / "run" / f"{lang}.yaml").is_file()
        for size in recipe_matrix.SIZES:
            values, sources = load_recipe(ROOT / "recipes" / "distill" / lang / f"{size}.yaml")
            assert values["student_shape"] == size and values["dataset_config"] == lang
            assert values["teacher_name_or_path"] == "FacebookAI/xlm-roberta-large" and values["teacher_layer"] == 12
            assert isinstance(values["learning_rate"], float) and sources["learning_rate"].endswith(
                f"base-{size}.yaml"
            )
    table = recipe_matrix.matrix(Path("recipes"), Path("runs-none"))
    assert table.count("| ok | ok | ok | yes |") == len(LANGUAGES)


def _copy_recipes(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "recipes", tmp_path / "recipes")
    return tmp_path / "recipes"


def test_broken_recipes_name_the_file_and_the_key(tmp_path, monkeypatch):
    demo = tmp_path / "run-da.yaml"  # validated from the repository root, where ../shared is
    demo.write_text((ROOT / "recipes/demo/run-da.yaml").read_text().replace("train.iob2", "trian.iob2"))
    ((_, error),) = recipe_matrix.validate([demo])
    assert "key 'ner_train': ../shared/data/ner/da/trian.iob2 does not exist" in error
    assert recipe_matrix.main(["validate", str(demo)]) == 1
    root = _copy_recipes(tmp_path)
    monkeypatch.chdir(tmp_path)
    da = Path("recipes/distill/da/xs.yaml")
    da.write_text(da.read_text() + "learning_rat: 1.0e-4\n")
    ((path, error),) = recipe_matrix.validate([da])
    assert "recipes/distill/da/xs.yaml: unknown key 'learning_rat' (did you mean 'learning_rate'?)" in error
    base = root / "distill" / "base-m.yaml"
    base.write_text(base.read_text().replace("max_steps: 200000", "max_steps: many"))
    ((_, error),) = recipe_matrix.validate([Path("recipes/distill/de/m.yaml")])
    assert "base-m.yaml: key 'max_steps': expected an integer, got 'many'" in error
    run_recipe = Path("recipes/run/fr.yaml")
    run_recipe.write_text(run_recipe.read_text().replace("tasks: [ud, ner]", "tasks: [ud, pos]"))
    ((_, error),) = recipe_matrix.validate([run_recipe])
    assert "recipes/run/fr.yaml" in error and "unknown ['pos']" in error
    cpu = Path("recipes/distill/cpu/m.yaml")
    original = cpu.read_text()
    for bad, message in (
        ("hidden_layers: ['12']\n", "hidden_layers: '12' is not a layer pair"),
        ("student_layers: 0,1\n", "student_layers 0,1 keeps 2 layers, student_shape L6-H384-A12 has 6"),
        ("hidden_loss_weight: -1\n", "key 'hidden_loss_weight': must be >= 0, got -1.0"),
    ):
        cpu.write_text(original + bad)
        ((_, error),) = recipe_matrix.validate([cpu])
        assert "recipes/distill/cpu/m.yaml" in error and message in error, error


def test_defaults_are_one_level_deep(tmp_path):
    (tmp_path / "a.yaml").write_text("defaults: b.yaml\nx: 1\n")
    (tmp_path / "b.yaml").write_text("defaults: c.yaml\ny: 2\n")
    with pytest.raises(RecipeError, match="b.yaml: key 'defaults': a defaults file cannot have defaults"):
        load_recipe(tmp_path / "a.yaml")
    (tmp_path / "b.yaml").write_text("x: 0\ny: 2\n")
    values, sources = load_recipe(tmp_path / "a.yaml")
    assert values == {"x": 1, "y": 2} and sources["y"].endswith("b.yaml") and sources["x"].endswith("a.yaml")


def test_plan_of_the_release_recipes():
    xs = recipe_matrix.plan(Path("recipes/distill/da/xs.yaml"))
    m = recipe_matrix.plan(Path("recipes/distill/da/m.yaml"))
    assert xs["student_parameters"] == pytest.approx(103.3e6, rel=2e-3)
    assert m["student_parameters"] == pytest.approx(234.9e6, rel=2e-3)
    assert xs["tokens_seen"] == 200_000 * 256 * 512 and xs["batch_size"] == 256
    assert xs["checkpoints"] == 20 and 0 < xs["gpu_hours"] < m["gpu_hours"]
    assert m["checkpoint_disk_gb"] == pytest.approx(20 * m["student_parameters"] * 12 / 1e9)


def test_new_language_writes_recipes_that_validate(tmp_path, monkeypatch):
    _copy_recipes(tmp_path)
    monkeypatch.chdir(tmp_path)
    argv = ["new", "--lang", "mt", "--name", "Maltese", "--treebank", "UD_Maltese-MUDT", "--flores", "mlt_Latn"]
    assert recipe_matrix.main(argv) == 0
    written = sorted(Path("recipes").rglob("mt*.yaml")) + sorted(Path("recipes/distill/mt").glob("*.yaml"))
    assert len(written) == 4
    assert all(error is None for _, error in recipe_matrix.validate(written))
    assert cli_main(["recipes", *argv]) == 2  # never overwrites
    assert cli_main(["recipes", *argv[:-1], "mlt_Latn", "--lang", "Maltese"]) == 2  # not an ISO code


@pytest.mark.slow
def test_offline_branch_of_adding_a_language(tmp_path, shared, monkeypatch, capsys):
    """recipes/README.md's offline walkthrough, followed for a language added from local text and a local treebank."""
    repo = tmp_path / "repo"  # its ../shared is the real one, as for the repository
    repo.mkdir()
    (tmp_path / "shared").symlink_to(shared)
    _copy_recipes(repo)
    monkeypatch.chdir(repo)
    Path("data").mkdir()
    Path("data/mt.txt").write_text((shared / "data/text/ga.txt").read_text(encoding="utf-8"), encoding="utf-8")
    blocks = (shared / "data/ud/ga/dev.conllu").read_text(encoding="utf-8").split("\n\n")
    Path("data/mt-ud.conllu").write_text("\n\n".join(blocks[:60]) + "\n\n", encoding="utf-8")
    argv = ["recipes", "new", "--lang", "mt", "--name", "Maltese", "--treebank", "UD_Maltese-MUDT", "--flores",
            "mlt_Latn", "--text", "data/mt.txt", "--ud", "data/mt-ud.conllu"]  # fmt: skip
    assert cli_main(argv) == 0
    assert cli_main(["recipes", "validate", "recipes/run/cpu/mt.yaml"]) == 0
    tiny = ["--finetune.max_steps", "2", "--finetune.eval_steps", "1", "--finetune.save_steps", "1",
            "--finetune.segmenter_steps", "2", "--bench_repeats", "1", "--bench_batch_sizes", "[1]"]  # fmt: skip
    capsys.readouterr()
    assert cli_main(["run", "recipes/run/cpu/mt.yaml", "--size", "xs", *tiny]) == 0
    out = capsys.readouterr().out
    assert "ud: UPOS" in out and "card: runs/time-mt-xs/publish/time-mt-xs/README.md" in out
    card = Path("runs/time-mt-xs/publish/time-mt-xs/README.md").read_text(encoding="utf-8")
    assert "universal_dependencies/UD_Maltese-MUDT (20% of dev, not trained on)" in card and "license: mit" in card


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_a_gpu_recipe_on_a_cpu_machine_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TIME_HUB_DEBUG", raising=False)
    out = tmp_path / "run"
    assert cli_main(["run", "recipes/run/hu.yaml", "--size", "xs", "--output_dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "error: recipes/distill/hu/../base-xs.yaml: key 'bf16': a GPU setting, and no GPU is visible here" in err
    assert "recipes/run/cpu/<lang>.yaml" in err and "Traceback" not in err and not out.exists()


def test_run_takes_stage_overrides(tmp_path):
    from time_hub.arguments import parse

    ((args,), _) = parse((RunArguments,), ["--config", "recipes/run/cpu/ga.yaml", "--distill.max_steps", "200",
                                            "--finetune.max_steps", "20"])  # fmt: skip
    assert args.distill == {"train_files": ["../shared/data/text/ga.txt"], "max_steps": 200}
    assert args.finetune == {"max_steps": 20}


def test_run_chains_the_stages_and_skips_what_is_up_to_date(tiny_bert_dir, shared, tmp_path):
    distill = tmp_path / "distill.yaml"
    distill.write_text(
        f"teacher_name_or_path: {tiny_bert_dir}\nstudent_shape: L2-H32-A2\nnum_relation_heads: 8\nmax_steps: 4\n"
        f"save_steps: 2\nper_device_train_batch_size: 4\nmax_seq_length: 32\nuse_cpu: true\nreport_to: none\n"
        f"disable_tqdm: true\ntrain_files: [{shared / 'data/text/da.txt'}]\nvalidation_holdout_lines: 40\n"
        f"max_validation_sequences: 8\n"
    )
    (tmp_path / "ner.yaml").write_text(
        "task: ner\nmax_length: 64\nmax_steps: 4\nper_device_train_batch_size: 8\nlearning_rate: 1.0e-3\n"
        "eval_strategy: steps\neval_steps: 2\nsave_steps: 2\nload_best_model_at_end: true\n"
        "metric_for_best_model: f1\nsave_total_limit: 1\nuse_cpu: true\nreport_to: none\ndisable_tqdm: true\n"
    )
    ner = shared / "data" / "ner" / "da"
    args = dict(lang="da", size="tiny", distill_recipe=str(distill), output_dir=str(tmp_path / "run"), tasks=["ner"])
    args |= dict(ner_train=str(ner / "train.iob2"), ner_dev=str(ner / "dev.iob2"), ner_train_sentences=32)
    args |= dict(finetune_recipe=str(tmp_path / "{task}.yaml"), bench_batch_sizes=[1])
    args |= dict(bench_repeats=1, test_data=[f"ner={ner / 'dev.iob2'}"])
    first = run(RunArguments(**args))
    assert [s["status"] for s in first["stages"]] == ["ran"] * 6
    out = tmp_path / "run"
    assert (out / "tasks/ner/results.json").is_file() and (out / "bench/bench.json").is_file()
    card = Path(first["card"]).read_text()
    assert "time/time-da-tiny" in card and "pipeline_tag: feature-extraction" in card
    again = run(RunArguments(**args))
    assert [s["status"] for s in again["stages"]] == ["skipped (up to date)"] * 6
    changed = run(RunArguments(**(args | {"ner_train_sentences": 24})))
    ran = [s["stage"] for s in changed["stages"] if s["status"] == "ran"]
    assert ran == ["finetune-ner", "evaluate-ner", "bench", "card"]
    stages = json.loads((out / "stages.json").read_text())
    assert stages.keys() == {"distill", "select", "finetune-ner", "evaluate-ner", "bench", "card"}
    teacher = json.loads((out / "tasks/ner/results.json").read_text())
    teacher["metrics"]["f1"] = 2 * teacher["metrics"]["f1"] or 1.0
    (tmp_path / "teacher-ner.json").write_text(json.dumps(teacher))
    summary = summary_text(changed, [str(tmp_path / "teacher-ner.json")])
    f1 = json.loads((out / "tasks/ner/results.json").read_text())["metrics"]["f1"]
    assert f"ner: f1 {f1:.2f} ({100 * f1 / teacher['metrics']['f1']:.1f}% of the teacher)" in summary
    test = json.loads((out / "tasks/ner/results-test.json").read_text())
    assert test["split"] == "test" and "provenance/results-1-ner.json" in Path(changed["card"]).read_text()
    renamed = run(RunArguments(**(args | {"ner_train_sentences": 24, "data_names": {"ner": "UniversalNER/x"}})))
    assert [s["stage"] for s in renamed["stages"] if s["status"] == "ran"] == ["card"]  # a card key: the card only
    assert "UniversalNER/x" in Path(renamed["card"]).read_text()


def test_runs_table_shows_every_distillation_run(tmp_path):
    from time_hub.run_dir import DistillationSettings, RunConfig

    settings = DistillationSettings("t", 2, 2, 4, ["qq", "kk", "vv"], "float32")
    for name, steps in (("demo-da", 10), ("nested/time-hu-s", 0)):
        run = tmp_path / name
        RunConfig({"max_steps": 20}, settings, 1, 1, 1).save(run)
        (run / f"checkpoint-{steps}").mkdir()
    (tmp_path / "demo-da" / "tasks" / "ud").mkdir(parents=True)
    (tmp_path / "demo-da" / "tasks" / "ud" / "results.json").write_text("{}")
    table = recipe_matrix.runs_table(tmp_path)
    assert f"| {tmp_path / 'demo-da'} | 10/20 steps | no | ud | - |" in table
    assert f"| {tmp_path / 'nested' / 'time-hu-s'} | 0/20 steps | no | - | - |" in table
    assert recipe_matrix.runs_table(tmp_path / "none") == f"no distillation runs under {tmp_path / 'none'}/"
