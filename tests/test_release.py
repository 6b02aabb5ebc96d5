"""`time-hub release` end to end: a two-language hub at a tiny budget from the real teacher and data in ../shared
(students fine-tuned with silver data from the teacher), three broken languages reported and skipped, every model
published to the local Hub server and loaded back by transformers in a fresh process."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hub_server import WRITE_TOKEN, HubServer, hub_env, run_client

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--finetune.max_steps", "2", "--finetune.eval_steps", "1", "--finetune.save_steps", "1",
        "--finetune.segmenter_steps", "2", "--run.bench_repeats", "1", "--run.bench_batch_sizes", "[1]"]  # fmt: skip


def recipes(tmp_path: Path, shared: Path) -> Path:
    """Run recipes: ga and ur as the repository has them (UD only: the NER pipeline from the Hub is test_publish's),
    and three broken languages."""
    folder = tmp_path / "run"
    folder.mkdir()
    for lang in ("ga", "ur"):
        (folder / f"{lang}.yaml").write_text((ROOT / "recipes" / "run" / "cpu" / f"{lang}.yaml").read_text())
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "empty.conllu").write_text("")
    ga = (folder / "ga.yaml").read_text()
    broken = {
        "xx": ga.replace("lang: ga", "lang: xx").replace("text/ga.txt", "text/xx.txt"),  # no text file
        "yy": ga.replace("lang: ga", "lang: yy").replace(
            "../shared/data/text/ga.txt", str(tmp_path / "empty.txt")),  # an empty text file
        "zz": ga.replace("lang: ga", "lang: zz").replace(
            "../shared/data/ud/ga/dev.conllu", str(tmp_path / "empty.conllu")),  # a treebank with no sentences
    }  # fmt: skip
    for lang, text in broken.items():
        (folder / f"{lang}.yaml").write_text(text)
    return folder


@pytest.mark.slow
def test_a_two_language_hub_is_built_published_and_loads(tmp_path, shared):
    run_recipes, results = recipes(tmp_path, shared), tmp_path / "results"
    models = "{ga: [xs], ur: [xs], xx: [xs], yy: [xs], zz: [xs]}"
    argv = [sys.executable, "-m", "time_hub.cli", "release", "recipes/release/cpu.yaml", "--models", models,
            "--run_recipe", f"{run_recipes}/{{lang}}.yaml", "--random_init_sizes", "[xs]",
            "--output_dir", str(tmp_path / "runs"), "--results_dir", str(results), "--publish", "true",
            "--silver", "{gold_repeat: 2}", *TINY]  # fmt: skip
    with HubServer(tmp_path / "hub") as hub:
        proc = subprocess.run(
            argv, env=hub_env(hub, WRITE_TOKEN), capture_output=True, text=True, cwd=ROOT, timeout=1500
        )
        assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
        assert proc.returncode == 1 and "built 2 of 5 models" in proc.stdout, proc.stdout + proc.stderr[-3000:]
        failed = {line.split(":")[0]: line for line in proc.stdout.splitlines() if line.startswith("FAILED")}
        assert "xx.txt: no such file (train_files)" in failed["FAILED time-xx-xs"]
        assert "empty.txt: 0 usable tokens" in failed["FAILED time-yy-xs"]
        assert "empty.conllu: no sentences (the file is empty)" in failed["FAILED time-zz-xs"]

        board = json.loads((results / "leaderboard.json").read_text())["models"]
        assert [(r["lang"], r["size"]) for r in board] == [("ga", "xs"), ("ur", "xs")]
        ur = board[1]
        assert set(ur["scores"]) == {"UPOS", "Lemmas", "LAS"} and set(ur["retention"]) == set(ur["scores"])
        assert "LAS" in ur["random_gap"] and ur["speedup_b1"] > 1
        assert (results / "ur" / "xs" / "card" / "README.md").is_file() and (
            results / "ga" / "teacher" / "ud.json"
        ).is_file()
        assert not list(results.glob("*/*/card/*.safetensors"))  # cards, no weights
        silver = {lang: json.loads((results / lang / "xs" / "ud.json").read_text())["extra"]["training"]["silver"]
                  for lang in ("ga", "ur")}  # fmt: skip
        assert silver["ga"]["sentences"] > 0 and silver["ga"]["gold_repeat"] == 2  # the fortunes, by the teacher
        assert silver["ur"]["sentences"] == 0  # ur's text is its UD dev sentences: nothing left, gold only
        assert "no line of text left" in proc.stderr

        from time_hub.publish.space import discover

        assert {"ga", "ur"} <= set(discover(tmp_path / "runs"))  # `time-hub space serve --runs_dir` lists them

        published = [line.split()[1] for line in proc.stdout.splitlines() if line.startswith("published ")]
        assert sorted(published) == ["time/time-ga-xs", "time/time-ga-xs-ud", "time/time-ur-xs", "time/time-ur-xs-ud"]
        assert all("v0.1.0" in hub.repo(repo_id).tags for repo_id in published)
        assert (
            "silver sentences (the fine-tuned teacher's analysis"
            in hub.files("time/time-ga-xs-ud")["README.md"].decode()
        )
        run_client(
            f"""
            from transformers import AutoModel
            from time_hub.annotate.pipeline import Pipeline
            for repo_id in {published!r}:
                AutoModel.from_pretrained(repo_id)
            sentences = Pipeline.from_pretrained("time/time-ga-xs-ud")(["Tá sé fuar inniu. Cá bhfuil tú?"])[0]
            assert "".join(w.form for s in sentences for w in s.words) == "Táséfuarinniu.Cábhfuiltú?"
            """,
            hub_env(hub),
        )
        assert not hub.errors, hub.errors


def test_a_model_built_on_another_machine_is_skipped_not_rebuilt(tmp_path, caplog):
    """Results committed (model.json in results_dir) but no run under output_dir: skipped, counted, nothing run."""
    from time_hub.release import ReleaseArguments, release

    results = tmp_path / "results"
    (results / "ga" / "xs").mkdir(parents=True)
    (results / "ga" / "xs" / "model.json").write_text("{}")
    args = ReleaseArguments(models={"ga": ["xs"]}, output_dir=str(tmp_path / "runs"), results_dir=str(results))
    with caplog.at_level("INFO", logger="time_hub.release"):
        report = release(args)
    assert report["built"] == 0 and report["elsewhere"] == ["time-ga-xs"] and not report["failed"]
    assert "its results are committed and its run is not here" in caplog.text
    assert not (tmp_path / "runs").exists()
    assert sorted(p.name for p in results.rglob("*")) == ["ga", "model.json", "xs"]  # no leaderboard from it alone
