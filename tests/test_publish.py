"""`time-hub publish` end to end against the local protocol-level Hub (tests/hub_server.py): a distilled student and
a fine-tuned NER model are pushed by the real client, then loaded in fresh processes by transformers."""

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from hub_server import OTHER_TOKEN, WRITE_TOKEN, HubServer, hub_env, run_client

ROOT = Path(__file__).resolve().parents[1]


def publish(hub: HubServer, run: Path, token: str | None, *extra: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "time_hub.cli", "publish", str(run), "--lang", "da", "--size", "xs", *extra]
    return subprocess.run(argv, env=hub_env(hub, token), capture_output=True, text=True, cwd=ROOT, timeout=300)


@pytest.fixture(scope="module")
def published(tmp_path_factory, tiny_run):
    with HubServer(tmp_path_factory.mktemp("hub")) as hub:
        encoder = publish(hub, tiny_run, WRITE_TOKEN, "--base_model", "intfloat/multilingual-e5-small",
                          "--collection", "TiME Danish")  # fmt: skip
        assert encoder.returncode == 0, encoder.stderr
        ner = publish(hub, tiny_run, WRITE_TOKEN, "--task", "ner")
        assert ner.returncode == 0, ner.stderr
        yield hub, encoder.stdout, ner.stdout
        assert not hub.errors, hub.errors


def test_published_models_load_like_the_local_folders(published, tiny_run):
    hub, encoder_out, _ = published
    assert "new commit" in encoder_out and "tag: v" in encoder_out
    repo = hub.repo("time/time-da-xs")
    assert "v0.1.0" in repo.tags and not repo.private
    files = hub.files("time/time-da-xs")
    assert {"model.safetensors", "config.json", "tokenizer.json", "README.md", "provenance/selection.json"} <= set(
        files
    )
    assert not any(name.endswith((".bin", ".pt")) for name in files)
    code = f"""
    import json, torch
    from transformers import AutoModel, AutoTokenizer, pipeline
    text = "Mette Frederiksen besøgte Aarhus Universitet i går."
    out = {{}}
    for name, where in (("hub", "time/time-da-xs"), ("local", {str(tiny_run / "best")!r})):
        tok = AutoTokenizer.from_pretrained(where)
        model = AutoModel.from_pretrained(where).eval()
        with torch.no_grad():
            out[name] = model(**tok(text, return_tensors="pt")).last_hidden_state.tolist()
    for name, where in (("hub_ner", "time/time-da-xs-ner"), ("local_ner", {str(tiny_run / "tasks" / "ner")!r})):
        out[name] = [(e["word"], e["entity"], round(float(e["score"]), 5)) for e in
                     pipeline("token-classification", model=where, device="cpu", ignore_labels=[])(text)]
    print(json.dumps(out))
    """
    out = json.loads(run_client(code, hub_env(hub)).stdout.splitlines()[-1])
    assert out["hub"] == out["local"]
    assert out["hub_ner"] == out["local_ner"] and out["hub_ner"]


def test_republishing_unchanged_content_makes_no_commit(published, tiny_run):
    hub, _, _ = published
    commits = len(hub.repo("time/time-da-xs").commits)
    again = publish(hub, tiny_run, WRITE_TOKEN, "--base_model", "intfloat/multilingual-e5-small")
    assert again.returncode == 0, again.stderr
    assert "no change" in again.stdout
    assert len(hub.repo("time/time-da-xs").commits) == commits


def test_card_passes_the_hubs_validation_and_collection_holds_the_model(published):
    hub, _, ner_out = published
    card = hub.files("time/time-da-xs-ner")["README.md"].decode()
    assert "pipeline_tag: token-classification" in card and "base_model: time/time-da-xs" in card
    assert any(path.endswith("/validate-yaml") and status == 200 for _, path, status in hub.log)
    (collection,) = hub.collections.values()
    assert collection["title"] == "TiME Danish"
    assert [item["id"] for item in collection["items"]] == ["time/time-da-xs"]


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("hf_wrong", "rejected the token (401)"),
        (OTHER_TOKEN, "may not write to 'time' (403)"),
        (None, "no Hugging Face token"),
    ],
)
def test_bad_tokens_are_rejected_and_nothing_is_written(published, tiny_run, token, message):
    hub, _, _ = published
    commits, blobs = len(hub.repo("time/time-da-xs").commits), hub.blob_count()
    result = publish(hub, tiny_run, token, "--repo_id", "time/time-da-xs")
    assert result.returncode == 2 and message in result.stderr
    assert len(hub.repo("time/time-da-xs").commits) == commits and hub.blob_count() == blobs
    if token:
        assert token not in result.stdout + result.stderr


@pytest.mark.parametrize(("token", "message"), [("hf_wrong", "rejected the token (401)"), (None, "no Hugging Face")])
def test_credentials_are_checked_before_anything_is_staged(published, tiny_run, token, message):
    hub, _, _ = published
    result = publish(hub, tiny_run, token, "--repo_id", "time/never-staged")
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert not (tiny_run / "publish" / "never-staged").exists()


def test_an_unreachable_hub_is_one_line_naming_the_endpoint(published, tiny_run):
    hub, _, _ = published
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = [sys.executable, "-m", "time_hub.cli", "publish", str(tiny_run), "--lang", "da", "--size", "xs",
            "--repo_id", "time/unreachable"]  # fmt: skip
    env = hub_env(hub, WRITE_TOKEN) | {"HF_ENDPOINT": f"http://127.0.0.1:{port}"}
    result = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"cannot reach the Hub at http://127.0.0.1:{port}" in result.stderr.strip().splitlines()[-1]
    assert not (tiny_run / "publish" / "unreachable").exists()


def test_dry_run_lists_the_repository_without_a_token(published, tiny_run):
    hub, _, _ = published
    result = publish(hub, tiny_run, None, "--dry_run", "true")
    assert result.returncode == 0, result.stderr
    assert "would upload time/time-da-xs" in result.stdout and "model.safetensors" in result.stdout
