"""The release chain against a Hub: `time-hub run recipes/run/hu.yaml --size xs` unchanged but for step counts and
sizes, with the teacher, CulturaX (streamed), FLORES+, WikiANN and UD all from the local Hub server
(tests/hub_fixtures.py), then `time-hub publish`, then a fresh process loads the student with AutoModel."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hub_fixtures import FIXTURE_ORGS, FIXTURE_TOKEN, TEACHER, seed
from hub_server import DEFAULT_TOKENS, OTHER_TOKEN, WRITE_TOKEN, HubServer, hub_env, run_client

ROOT = Path(__file__).resolve().parents[1]
# Sizes and step counts only: a CPU, a 4-layer teacher of hidden size 32, a few steps of everything.
DISTILL = {
    "max_steps": 4, "save_steps": 2, "eval_steps": 2, "logging_steps": 1, "warmup_steps": 0, "bf16": "false",
    "use_cpu": "true", "teacher_dtype": "float32", "per_device_train_batch_size": 4, "gradient_accumulation_steps": 1,
    "max_seq_length": 32, "max_validation_sequences": 8, "dataloader_num_workers": 0, "student_shape": "L2-H32-A2",
    "num_relation_heads": 8, "teacher_layer": 2,
}  # fmt: skip
FINETUNE = {
    "max_steps": 2, "eval_strategy": "steps", "eval_steps": 1, "save_strategy": "steps", "save_steps": 1,
    "per_device_train_batch_size": 4, "use_cpu": "true", "max_length": 64, "segmenter_steps": 2,
}  # fmt: skip


def overrides(**distill) -> list[str]:
    argv = [f"--distill.{k}={v}" for k, v in (DISTILL | distill).items()]
    argv += [f"--finetune.{k}={v}" for k, v in FINETUNE.items()]
    return argv + ["--bench_repeats", "1", "--bench_batch_sizes", "[1]"]


@pytest.fixture(scope="module")
def release_hub(tmp_path_factory, shared):
    tokens = DEFAULT_TOKENS | {FIXTURE_TOKEN: ("hub-admin", FIXTURE_ORGS)}
    root = tmp_path_factory.mktemp("release-hub")
    with HubServer(root / "hub", tokens=tokens) as hub:
        seed(hub, shared, root / "fixtures")
        yield hub
        assert not hub.errors, hub.errors


def time_hub(hub: HubServer, *argv: str, token: str | None = WRITE_TOKEN) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "time_hub.cli", *argv]
    return subprocess.run(argv, env=hub_env(hub, token), capture_output=True, text=True, cwd=ROOT, timeout=1500)


@pytest.mark.slow
def test_release_recipe_runs_against_the_hub_and_publishes(release_hub, tmp_path):
    out = tmp_path / "time-hu-xs"
    proc = time_hub(release_hub, "run", "recipes/run/hu.yaml", "--size", "xs", "--output_dir", str(out),
                    "--ud_train", "universal-dependencies/UD_Hungarian-Szeged", *overrides())  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "ud: UPOS" in proc.stdout and "ner: f1" in proc.stdout, proc.stdout
    card = (out / "publish" / "time-hu-xs" / "README.md").read_text(encoding="utf-8")
    assert "FacebookAI/xlm-roberta-large" in card and "uonlp/CulturaX" in card

    proc = time_hub(release_hub, "publish", str(out), "--lang", "hu", "--size", "xs", "--base_model", TEACHER)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_client(
        """
        from transformers import AutoModel
        model = AutoModel.from_pretrained("time/time-hu-xs")
        assert model.config.num_hidden_layers == 2 and model.config.hidden_size == 32
        """,
        hub_env(release_hub),
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            ["--distill.dataset_config", "hux"],
            "uonlp/CulturaX: BuilderConfig 'hux' not found. Available: ['hu', 'ga']",
        ),
        (["--distill.teacher_name_or_path", "FacebookAI/xlm-roberta-largest"], "FacebookAI/xlm-roberta-largest"),
    ],
)
def test_failure_paths_are_one_line(release_hub, tmp_path, override, message):
    out = tmp_path / "run"
    proc = time_hub(release_hub, "run", "recipes/run/hu.yaml", "--size", "xs", "--output_dir", str(out),
                    *overrides(), *override)  # fmt: skip
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert len(errors) == 1 and message in errors[0], proc.stderr[-3000:]
    print(errors[0])


@pytest.mark.slow
def test_release_chain_under_accelerate_launch_with_two_cpu_processes(release_hub, tmp_path):
    """recipes/accelerate/multi_gpu.yaml with two CPU processes (the recipe's use_cpu: gloo): every rank distills,
    rank 0 alone runs the later stages and writes the card; the run records a world size of 2."""
    out = tmp_path / "time-hu-xs"
    launch = ["-m", "accelerate.commands.launch", "--config_file", "recipes/accelerate/multi_gpu.yaml",
              "--num_processes", "2", "--mixed_precision", "no", "-m", "time_hub.cli"]  # fmt: skip
    argv = [sys.executable, *launch, "run", "recipes/run/hu.yaml", "--size", "xs", "--output_dir", str(out),
            "--ud_train", "universal-dependencies/UD_Hungarian-Szeged", *overrides()]  # fmt: skip
    env = hub_env(release_hub, WRITE_TOKEN) | {"OMP_NUM_THREADS": "1"}
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=ROOT, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert proc.stdout.count("card: ") == 1  # one summary: rank 0's
    (tmp_path / "launch.log").write_text(proc.stdout + proc.stderr)
    card_data = json.loads((out / "card_data.json").read_text())
    assert card_data["world_size"] == 2
    assert (out / "publish" / "time-hu-xs" / "README.md").is_file()


@pytest.mark.slow
def test_ud_parquet_conversion_reads_as_conllu(release_hub, shared):
    """`org/name:config` in a UD key: the parquet rows become CoNLL-U that the reader checks like any file."""
    run_client(
        f"""
        from time_hub.tasks.conllu import read_conllu, resolve_conllu
        original = read_conllu({str(shared / "data" / "ud" / "ga" / "dev.conllu")!r})
        for split, part in (("train", original[:360]), ("dev", original[360:])):
            converted = read_conllu(resolve_conllu("universal-dependencies/universal_dependencies:ga_idt", split))
            assert len(converted) == len(part), (split, len(converted))
            for a, b in zip(part, converted):
                assert [(w.form, w.lemma, w.upos, w.head, w.deprel, w.feats) for w in a.words] == [
                    (w.form, w.lemma, w.upos, w.head, w.deprel, w.feats) for w in b.words]
        """,
        hub_env(release_hub),
    )


@pytest.mark.slow
@pytest.mark.parametrize(("token", "status"), [(None, "401"), (OTHER_TOKEN, "403")])
def test_a_gated_dataset_without_access_is_one_line_before_any_model_loads(release_hub, tmp_path, token, status):
    release_hub.repo("uonlp/CulturaX", "dataset").gated = True
    try:
        out = tmp_path / "run"
        proc = time_hub(release_hub, "run", "recipes/run/hu.yaml", "--size", "xs", "--output_dir", str(out),
                        *overrides(), token=token)  # fmt: skip
    finally:
        release_hub.repo("uonlp/CulturaX", "dataset").gated = False
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert len(errors) == 1 and "uonlp/CulturaX" in errors[0] and "gated" in errors[0], errors
    assert "time_hub.distill.student" not in proc.stderr and not (out / "run_config.json").exists()  # no model
    print(status, errors[0])


@pytest.mark.slow
def test_a_network_drop_mid_stream_resumes_from_the_last_checkpoint_on_the_next_run(release_hub, tmp_path):
    out = tmp_path / "run"
    # Batches of 32 sequences: the first shard lasts about 9 steps, so checkpoints are written before the drop.
    steps = overrides(max_steps=16, save_steps=4, eval_steps=4, per_device_train_batch_size=32)
    argv = ["run", "recipes/run/hu.yaml", "--size", "xs", "--output_dir", str(out), "--tasks", "[ud]",
            "--ud_train", "universal-dependencies/UD_Hungarian-Szeged", *steps]  # fmt: skip
    release_hub.unreachable = {"hu_part_00001"}  # the stream's second shard cannot be read
    try:
        first = time_hub(release_hub, *argv)
    finally:
        release_hub.unreachable = set()
    errors = [line for line in first.stderr.splitlines() if line.startswith("error: ")]
    assert first.returncode == 2 and len(errors) == 1 and "Traceback" not in first.stderr, first.stderr[-3000:]
    checkpoints = sorted((p for p in out.glob("checkpoint-*")), key=lambda p: int(p.name.split("-")[1]))
    assert checkpoints and checkpoints[-1].name != "checkpoint-16", first.stderr[-3000:]
    second = time_hub(release_hub, *argv)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"resuming from {checkpoints[-1]}" in second.stderr, second.stderr[-3000:]
    print(errors[0], [p.name for p in checkpoints])
