"""The Gradio Space (space/): the app launched on 127.0.0.1 with tiny models built here, every tab called through
gradio_client, the input limit and the allow-list, model discovery for `time-hub space serve`, and
`time-hub space publish` against the local Hub (tests/hub_server.py)."""

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from hub_server import (
    WRITE_TOKEN,
    front_matter,
    hub_env,
    hub_fixture,  # noqa: F401
)

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from time_hub.publish.space import SpaceError, discover, load_app, read_models_file  # noqa: E402
from time_hub.run_dir import DistillationSettings, RunConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NER_TEXT = "Mette Frederiksen besøgte Aarhus i går."
CONTEXT = "Novo Nordisk er en dansk medicinalvirksomhed. Hovedsædet ligger i Bagsværd nord for København."


def _bench(name: str, reference: str) -> dict:
    """A minimal bench.json (schema 1) with one row, as `time-hub bench` writes it."""
    row = {
        "batch_size": 1,
        "latency_ms": {"median": 2.0, "p2_5": 1.5, "p97_5": 3.0},
        "sentences_per_s": 500.0,
        "tokens_per_s": 9000.0,
        "peak_memory_mb": 300.0,
        "joules_per_sentence": None,
    }
    return {
        "schema": 1,
        "settings": {"reference": reference},
        "ratios": {},
        "models": [{"name": name, "num_parameters": 1_000_000, "energy_counter": None, "results": [row]}],
    }


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory, tiny_bert_dir, tokenizer, shared) -> dict:
    """NER (head biased to B-PER: every word is an entity), UD, QA and a bigger 'teacher', all from the tiny BERT."""
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoModelForTokenClassification, BertConfig, BertModel

    from time_hub.encoder import load_encoder
    from time_hub.tasks.conllu import read_conllu
    from time_hub.tasks.ud_model import UDLabels, UDModel, UDSettings

    root = tmp_path_factory.mktemp("space-models")
    torch.manual_seed(0)
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    ner = AutoModelForTokenClassification.from_pretrained(tiny_bert_dir, id2label=dict(enumerate(labels)))
    with torch.no_grad():
        ner.classifier.weight.zero_()
        ner.classifier.bias.copy_(torch.tensor([0.0, 3.0, 1.0, 0.0, 0.0]))
    ner.save_pretrained(root / "ner")
    tokenizer.save_pretrained(root / "ner")
    sentences = read_conllu(shared / "data" / "ud" / "da" / "dev.conllu")[:40]
    ud = UDModel(load_encoder(tiny_bert_dir), UDLabels.from_sentences(sentences), UDSettings(max_length=128))
    ud.save_pretrained(root / "ud", tokenizer)
    AutoModelForQuestionAnswering.from_pretrained(tiny_bert_dir).save_pretrained(root / "qa")
    tokenizer.save_pretrained(root / "qa")
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
    )
    BertModel(config, add_pooling_layer=False).save_pretrained(root / "teacher")
    tokenizer.save_pretrained(root / "teacher")
    paths = {name: str(root / name) for name in ("ner", "ud", "qa", "teacher")}
    da = {"encoder": str(tiny_bert_dir), **paths, "bench": _bench("tiny-student", paths["teacher"])}
    en = {"encoder": None, "ner": paths["ner"], "ud": None, "qa": paths["qa"], "teacher": paths["teacher"]}
    return {"da": {"tiny": da}, "en": {"tiny": en | {"bench": None}}}


@pytest.fixture(scope="module")
def client(tiny_models):
    from gradio_client import Client

    app = load_app()
    demo = app.build_app(tiny_models)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app.launch(demo, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield Client(f"http://127.0.0.1:{port}/", verbose=False)
    finally:
        demo.close()


def test_ner_tab_highlights_entities_with_offsets(client):
    highlighted, entities = client.predict("da", "tiny", "", NER_TEXT, api_name="/ner")
    words = NER_TEXT.replace(".", " .").split()
    assert [e["word"] for e in entities] == words  # the head says B-PER for every word
    for e in entities:
        assert e["entity"] == "PER" and NER_TEXT[e["start"] : e["end"]] == e["word"] and 0 <= e["score"] <= 1
    assert "".join(t["token"] for t in highlighted) == NER_TEXT
    assert [t["token"] for t in highlighted if t["class_or_confidence"] == "PER"] == words


def test_ud_tab_gives_a_table_and_a_tree_picture(client):
    table, tree = client.predict("da", "tiny", "", "Hvor kommer julemanden fra?", api_name="/ud")
    assert table["headers"] == ["id", "token", "UPOS", "lemma", "features", "head", "relation"]
    rows = table["data"]
    assert [r[1] for r in rows] == ["Hvor", "kommer", "julemanden", "fra", "?"]
    heads = [r[5] for r in rows]
    assert all(isinstance(h, int) and 0 <= h <= len(rows) for h in heads) and heads.count(0) == 1
    assert all(r[2] and r[6] for r in rows)
    assert "<svg" in tree and "julemanden" in tree


def test_qa_tab_highlights_a_span_of_the_context_with_a_probability(client):
    highlighted, best = client.predict("en", "tiny", "", "Hvor ligger hovedsædet?", CONTEXT, api_name="/qa")
    assert best["answer"] and CONTEXT[best["start"] : best["end"]] == best["answer"]
    assert 0 <= best["score"] <= 1
    marked = [t["token"] for t in highlighted if t["class_or_confidence"]]
    assert marked == [best["answer"]] and "".join(t["token"] for t in highlighted) == CONTEXT


def test_speed_tab_times_student_and_teacher_and_shows_the_published_table(client, tiny_models):
    table, summary, published = client.predict(
        "da", "tiny", "", "Hej med dig.\nHvor kommer du fra?", api_name="/speed"
    )
    (student, teacher) = table["data"]
    encoder = Path(tiny_models["da"]["tiny"]["encoder"])  # shown without its absolute path
    assert student[:2] == ["student", f"{encoder.parent.name}/{encoder.name}"] and teacher[0] == "teacher"
    assert all(row[3] > 0 and row[4] > 0 for row in (student, teacher))
    assert "faster" in summary or "slower" in summary
    assert "| tiny-student |" in published
    _, _, none = client.predict("en", "tiny", "", "Hej.", api_name="/speed")  # student = the NER model's encoder
    assert none.startswith("No published")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("da", "tiny", "", "ord " * 129), "Input too long: the text has 129 words, the limit is 128"),
        (("da", "tiny", "", "x" * 1001), "Input too long: the text has 1,001 characters, the limit is 1,000"),
        (("da", "tiny", "evil/remote-code-model", NER_TEXT), "Unknown model 'evil/remote-code-model'"),
        (("da", "tiny", "/etc", NER_TEXT), "Unknown model '/etc'"),
        (("da", "huge", "", NER_TEXT), "No models for language 'da' and size 'huge'"),
        (("da", "tiny", "", "   "), "Please enter some text"),
    ],
)
def test_too_long_inputs_and_unknown_models_are_refused_with_a_message(client, args, message):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=message):
        client.predict(*args, api_name="/ner")


def test_a_pasted_model_must_be_listed_for_the_task(client, tiny_models):
    from gradio_client.exceptions import AppError

    ner = tiny_models["da"]["tiny"]["ner"]
    _, entities = client.predict("en", "tiny", ner + "/", NER_TEXT, api_name="/ner")  # the same folder, listed
    assert entities
    with pytest.raises(AppError, match="listed as a ud model, not as a NER model"):
        client.predict("da", "tiny", tiny_models["da"]["tiny"]["ud"], NER_TEXT, api_name="/ner")
    with pytest.raises(AppError, match="There is no UD model for English / tiny yet"):
        client.predict("en", "tiny", "", NER_TEXT, api_name="/ud")


def test_serve_discovers_runs_and_task_folders(tmp_path, tiny_models, tiny_bert_dir):
    paths = tiny_models["da"]["tiny"]
    run = tmp_path / "runs" / "demo-da"
    (run / "tasks").mkdir(parents=True)
    recipe = {"teacher_name_or_path": paths["teacher"], "student_shape": "L2-H48-A4", "train_files": ["t/da.txt"]}
    settings = DistillationSettings(paths["teacher"], 2, 2, 4, ["qq", "kk", "vv"], "float32")
    RunConfig(recipe, settings, student_parameters=1, train_sequences=1, heldout_sequences=1).save(run)
    (run / "best").symlink_to(tiny_bert_dir)
    (run / "tasks" / "ner").symlink_to(paths["ner"])
    (run / "checkpoint-2").symlink_to(tiny_bert_dir)
    (tmp_path / "runs" / "en_tasks" / "teacher").mkdir(parents=True)
    (tmp_path / "runs" / "en_tasks" / "teacher" / "ud").symlink_to(paths["ud"])
    found = discover(tmp_path / "runs")
    assert found["da"] == {
        "demo-da (L2-H48-A4)": {
            "encoder": str(run / "best"),
            "ner": str(run / "tasks" / "ner"),
            "ud": None,
            "qa": None,
            "teacher": paths["teacher"],
            "bench": None,
        }
    }
    assert found["en"]["en_tasks/teacher (L2-H48)"]["ud"] == str(tmp_path / "runs" / "en_tasks" / "teacher" / "ud")
    assert found["en"]["en_tasks/teacher (L2-H48)"]["teacher"] == paths["teacher"]  # a run's teacher fills in


def test_models_file_resolves_relative_paths_and_rejects_unknown_keys(tmp_path, tiny_models):
    (tmp_path / "ner").symlink_to(tiny_models["da"]["tiny"]["ner"])
    good = {"format": 1, "models": {"da": {"xs": {"ner": "ner", "teacher": "org/teacher", "bench": "b.json"}}}}
    (tmp_path / "models.json").write_text(json.dumps(good))
    entry = read_models_file(tmp_path / "models.json")["da"]["xs"]
    assert entry["ner"] == str(tmp_path / "ner") and entry["teacher"] == "org/teacher" and entry["ud"] is None
    good["models"]["da"]["xs"]["nre"] = "typo"
    (tmp_path / "models.json").write_text(json.dumps(good))
    with pytest.raises(SpaceError, match="da/xs: unknown keys \\['nre'\\]"):
        read_models_file(tmp_path / "models.json")


def test_space_serve_runs_the_app_on_a_models_file(tmp_path, tiny_models):
    models = tmp_path / "models.json"
    models.write_text(json.dumps({"format": 1, "models": tiny_models}))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = [sys.executable, "-m", "time_hub.cli", "space", "serve", "--models_file", str(models), "--port", str(port)]
    env = os.environ | {"GRADIO_ANALYTICS_ENABLED": "False"}
    server = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=5) as response:
                    config = json.loads(response.read())
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, server.stdout.read()
                time.sleep(0.5)
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
    assert config["title"] == "TiME: tiny monolingual encoders"
    assert {"ner", "ud", "qa", "speed"} <= {d.get("api_name") for d in config["dependencies"]}
    assert "da / tiny: encoder=" in output


def _space(hub, *args: str, token: str | None = WRITE_TOKEN) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "time_hub.cli", "space", "publish", *args]
    return subprocess.run(argv, env=hub_env(hub, token), capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_publish_pushes_a_gradio_space_and_republishing_is_a_no_op(hub, tmp_path):
    ids = {"encoder": "time/time-da-xs", "ner": "time/time-da-xs-ner", "teacher": "intfloat/multilingual-e5-small"}
    (tmp_path / "bench.json").write_text(json.dumps(_bench("time/time-da-xs", "intfloat/multilingual-e5-small")))
    models = tmp_path / "models.json"
    models.write_text(json.dumps({"format": 1, "models": {"da": {"xs": ids | {"bench": "bench.json"}}}}))
    args = ("--repo_id", "time/time-demo", "--models_file", str(models), "--stage_dir", str(tmp_path / "stage"))
    first = _space(hub, *args)
    assert first.returncode == 0, first.stderr
    assert "new commit" in first.stdout
    files = hub.files("time/time-demo", repo_type="space")
    card = front_matter(files["README.md"].decode())
    pin = re.search(r'^space = \["gradio==([^"]+)"\]', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    assert card["sdk"] == "gradio" and card["sdk_version"] == pin and card["app_file"] == "app.py"
    assert card["models"] == sorted(ids.values()) and card["license"] and card["title"] and card["emoji"]
    assert {"app.py", "inference.py", "requirements.txt", "time_hub/__init__.py", "time_hub/tasks/qa.py"} <= set(files)
    requirements = [line for line in files["requirements.txt"].decode().splitlines() if not line.startswith("#")]
    assert "torch>=2.6" in requirements and not any(line.lower().startswith("gradio") for line in requirements)
    staged = json.loads(files["models.json"])["models"]["da"]["xs"]
    assert staged["ner"] == ids["ner"] and staged["bench"]["models"][0]["name"] == "time/time-da-xs"  # inlined
    commits = len(hub.repo("time/time-demo", "space").commits)
    again = _space(hub, *args)
    assert again.returncode == 0, again.stderr
    assert "no change" in again.stdout and len(hub.repo("time/time-demo", "space").commits) == commits


def test_publish_refuses_local_folders_and_dry_run_needs_no_token(hub, tmp_path, tiny_models):
    local = tmp_path / "local.json"
    local.write_text(json.dumps({"format": 1, "models": {"da": {"xs": {"ner": tiny_models["da"]["tiny"]["ner"]}}}}))
    refused = _space(hub, "--repo_id", "time/x", "--models_file", str(local), "--stage_dir", str(tmp_path / "s"))
    assert refused.returncode == 2 and "cannot read local folders" in refused.stderr
    dry = _space(hub, "--repo_id", "time/x", "--dry_run", "true", "--stage_dir", str(tmp_path / "s"), token=None)
    assert dry.returncode == 0, dry.stderr
    assert "would upload time/x" in dry.stdout and "models.json" in dry.stdout and hub.repo("time/x", "space") is None
    staged = yaml.safe_load((tmp_path / "s" / "README.md").read_text().split("---\n")[1])
    assert staged["models"] == sorted(
        {
            v
            for sizes in read_models_file(ROOT / "space" / "models.json").values()
            for e in sizes.values()
            for k, v in e.items()
            if k != "bench" and v
        }
    )
