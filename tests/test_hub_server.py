"""The test Hub against the real clients: huggingface_hub and transformers run in subprocesses (see hub_server.py)."""

import json

import pytest
from hub_server import OTHER_TOKEN, READ_TOKEN, WRITE_TOKEN, hub_env, hub_fixture, run_client  # noqa: F401

PRELUDE = """
import json, sys
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import HfHubHTTPError
api = HfApi()

def error(fn):
    try:
        fn()
    except Exception as e:
        status = getattr(getattr(e, "response", None), "status_code", None)
        return {"type": type(e).__name__, "status": status, "http": isinstance(e, HfHubHTTPError), "text": str(e)}
"""


def client(server, code: str, token: str | None = WRITE_TOKEN, **values) -> dict:
    """Run `code` after PRELUDE with `values` bound as Python literals; it prints one JSON line, returned parsed."""
    bindings = "".join(f"{k} = {v!r}\n" for k, v in values.items())
    proc = run_client(PRELUDE + bindings + code, hub_env(server, token))
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture
def folder(tmp_path):
    """A model folder: a text file, a card with YAML front matter and a tiny real safetensors file (stored in LFS)."""
    import torch
    from safetensors.torch import save_file

    path = tmp_path / "model"
    path.mkdir()
    (path / "notes.txt").write_text("hello hub\n")
    (path / "README.md").write_text("---\nlanguage: da\nlicense: apache-2.0\ntags: [time]\n---\n# Tiny\n")
    save_file({"w": torch.arange(12, dtype=torch.float32).reshape(3, 4)}, path / "model.safetensors")
    return path


UPLOAD = """
api.create_repo("time/tiny", exist_ok=True)
info = api.upload_folder(repo_id="time/tiny", folder_path=folder)
"""


def test_upload_download_roundtrip(hub, folder, tmp_path):
    out = client(
        hub,
        UPLOAD
        + """
url = api.create_repo("time/tiny", exist_ok=True)
print(json.dumps({"oid": info.oid, "url": url, "files": api.list_repo_files("time/tiny"),
                  "sha": api.model_info("time/tiny").sha}))
""",
        folder=str(folder),
    )
    assert len(out["oid"]) == 40 and out["sha"] == out["oid"] == hub.repo("time/tiny").branches["main"]
    assert out["url"] == f"{hub.url}/time/tiny"
    assert out["files"] == [".gitattributes", "README.md", "model.safetensors", "notes.txt"]
    head = hub.repo("time/tiny").commits[-1]
    assert head.files["model.safetensors"].lfs and not head.files["notes.txt"].lfs
    assert hub.files("time/tiny")["model.safetensors"] == (folder / "model.safetensors").read_bytes()

    # a fresh process, fresh cache and no token: the repo is public
    out = client(
        hub,
        """
files = {f: hf_hub_download("time/tiny", f) for f in ["notes.txt", "README.md", "model.safetensors"]}
snap = snapshot_download("time/tiny")
errors = {
    "entry": error(lambda: hf_hub_download("time/tiny", "missing.txt")),
    "revision": error(lambda: hf_hub_download("time/tiny", "notes.txt", revision="nope")),
    "repo": error(lambda: hf_hub_download("time/nothing", "notes.txt")),
}
print(json.dumps({"files": files, "snap": snap, "errors": errors}))
""",
        token=None,
    )
    for name, path in out["files"].items():
        assert open(path, "rb").read() == (folder / name).read_bytes()
        assert open(f"{out['snap']}/{name}", "rb").read() == (folder / name).read_bytes()
    assert {k: v["type"] for k, v in out["errors"].items()} == {
        "entry": "RemoteEntryNotFoundError",
        "revision": "RevisionNotFoundError",
        "repo": "RepositoryNotFoundError",
    }


def test_unchanged_upload_makes_no_commit(hub, folder):
    out = client(
        hub,
        UPLOAD
        + """
again = api.upload_folder(repo_id="time/tiny", folder_path=folder)
with open(folder + "/notes.txt", "a") as f:
    f.write("one more line\\n")
changed = api.upload_folder(repo_id="time/tiny", folder_path=folder)
commits = [c.commit_id for c in api.list_repo_commits("time/tiny")]
print(json.dumps({"first": info.oid, "again": again.oid, "changed": changed.oid, "commits": commits}))
""",
        folder=str(folder),
    )
    assert out["again"] == out["first"] != out["changed"]
    repo = hub.repo("time/tiny")
    assert [c.title for c in repo.commits] == ["initial commit"] + ["Upload folder using huggingface_hub"] * 2
    assert out["commits"] == [c.id for c in reversed(repo.commits)]
    before, after = repo.commits[-2].files, repo.commits[-1].files
    assert {p for p in after if after[p] != before.get(p)} == {"notes.txt"}
    assert sum(method == "PUT" for method, _, _ in hub.log) == 1  # the LFS blob was uploaded once


def test_tags(hub, folder):
    out = client(
        hub,
        UPLOAD
        + """
api.create_tag("time/tiny", tag="v0.1.0")
api.upload_file(path_or_fileobj=b"changed", path_in_repo="notes.txt", repo_id="time/tiny")
old = open(hf_hub_download("time/tiny", "notes.txt", revision="v0.1.0")).read()
new = open(hf_hub_download("time/tiny", "notes.txt")).read()
by_sha = open(hf_hub_download("time/tiny", "notes.txt", revision=info.oid)).read()
refs = api.list_repo_refs("time/tiny")
again = error(lambda: api.create_tag("time/tiny", tag="v0.1.0"))
print(json.dumps({"old": old, "new": new, "by_sha": by_sha, "again": again, "oid": info.oid,
                  "tags": {t.name: t.target_commit for t in refs.tags}}))
""",
        folder=str(folder),
    )
    assert out["old"] == out["by_sha"] == "hello hub\n" and out["new"] == "changed"
    assert out["tags"] == {"v0.1.0": out["oid"]} == hub.repo("time/tiny").tags
    assert out["again"]["http"] and out["again"]["status"] == 409


def test_rejected_writes_write_nothing(hub, folder):
    client(
        hub, UPLOAD + 'api.create_repo("mallory/x", token=other)\nprint("{}")', folder=str(folder), other=OTHER_TOKEN
    )
    blobs, commits = hub.blob_count(), len(hub.repo("time/tiny").commits)
    out = client(
        hub,
        """
up = lambda repo, token: lambda: api.upload_folder(repo_id=repo, folder_path=folder, token=token)
print(json.dumps({
    "wrong": error(up("time/tiny", "hf_wrong")),
    "wrong_file": error(lambda: api.upload_file(path_or_fileobj=b"x", path_in_repo="x", repo_id="time/tiny",
                                                token="hf_wrong")),
    "anonymous": error(up("time/tiny", False)),
    "read_token": error(up("time/tiny", read)),
    "other_namespace": error(up("mallory/x", write)),
    "create_other_namespace": error(lambda: api.create_repo("mallory/y", token=write)),
}))
""",
        token=None,
        folder=str(folder),
        read=READ_TOKEN,
        write=WRITE_TOKEN,
    )
    assert {k: v["status"] for k, v in out.items()} == {
        "wrong": 401,
        "wrong_file": 401,
        "anonymous": 401,
        "read_token": 403,
        "other_namespace": 403,
        "create_other_namespace": 403,
    }
    assert all(v["http"] for v in out.values())
    assert out["anonymous"]["type"] == "RepositoryNotFoundError"  # as the client maps a 401 from the real Hub
    assert hub.blob_count() == blobs and len(hub.repo("time/tiny").commits) == commits
    assert len(hub.repo("mallory/x").commits) == 1 and hub.repo("mallory/y") is None


def test_private_repo(hub, tmp_path):
    out = client(
        hub,
        """
api.create_repo("time/secret", private=True)
api.upload_file(path_or_fileobj=b"top secret", path_in_repo="secret.txt", repo_id="time/secret")
get = lambda token, cache: lambda: hf_hub_download("time/secret", "secret.txt", token=token, cache_dir=cache)
print(json.dumps({
    "anonymous": error(get(False, tmp + "/a")),
    "anonymous_info": error(lambda: api.model_info("time/secret", token=False)),
    "other_user": error(get(other, tmp + "/b")),
    "reader": open(get(read, tmp + "/c")(), "rb").read().decode(),
    "private": api.model_info("time/secret").private,
}))
""",
        tmp=str(tmp_path),
        other=OTHER_TOKEN,
        read=READ_TOKEN,
    )
    assert out["anonymous"]["type"] == out["anonymous_info"]["type"] == "RepositoryNotFoundError"
    assert out["anonymous"]["status"] == 401 and out["other_user"]["status"] == 404
    assert out["other_user"]["type"] == "RepositoryNotFoundError"
    assert out["reader"] == "top secret" and out["private"] is True


def test_card_validation(hub):
    out = client(
        hub,
        """
from huggingface_hub import ModelCard
good = "---\\nlanguage: [da, en]\\nlicense: apache-2.0\\ntags: [time]\\nlibrary_name: transformers\\n---\\n# Card\\n"
ModelCard(good).validate()
api.create_repo("time/tiny")
bad_card = error(lambda: ModelCard("---\\nlanguage: 5\\n---\\n# Card\\n").validate())
upload = lambda text: lambda: api.upload_file(path_or_fileobj=text.encode(), path_in_repo="README.md",
                                              repo_id="time/tiny")
print(json.dumps({
    "bad_card": bad_card,
    "list": error(upload("---\\n- a\\n- b\\n---\\n")),
    "syntax": error(upload("---\\nlanguage: [da\\n---\\n")),
    "tags": error(upload("---\\ntags: time\\n---\\n")),
    "good": error(upload(good)),
}))
""",
    )
    assert out["bad_card"]["type"] == "ValueError" and '"language"' in out["bad_card"]["text"]
    for key in ("list", "syntax", "tags"):
        assert out[key]["type"] == "ValueError" and "Invalid metadata" in out[key]["text"], out[key]
    assert out["good"] is None
    assert [c.title for c in hub.repo("time/tiny").commits] == [
        "initial commit",
        "Upload README.md with huggingface_hub",
    ]


def test_transformers_from_pretrained(hub, tiny_bert_dir, tmp_path):
    """A tiny BERT token classifier uploaded with upload_folder loads with AutoModel/AutoTokenizer/pipeline in a fresh
    process and gives the outputs of the local folder."""
    import torch
    from transformers import AutoModel, AutoTokenizer, BertForTokenClassification, pipeline

    torch.manual_seed(0)
    local = tmp_path / "tiny"
    labels = {0: "O", 1: "B-PER", 2: "I-PER"}
    BertForTokenClassification.from_pretrained(tiny_bert_dir, id2label=labels).save_pretrained(local)
    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(local)
    text = "Mette Frederiksen bor i København."
    out = client(
        hub,
        """
api.create_repo("time/tiny")
api.upload_folder(repo_id="time/tiny", folder_path=local)
import torch
from transformers import AutoModel, AutoTokenizer, pipeline
tok = AutoTokenizer.from_pretrained("time/tiny")
model = AutoModel.from_pretrained("time/tiny")
with torch.no_grad():
    hidden = model(**tok(text, return_tensors="pt")).last_hidden_state
ner = pipeline("token-classification", model="time/tiny")
print(json.dumps({"ids": tok(text)["input_ids"], "hidden": hidden.tolist(),
                  "ner": [{**e, "score": float(e["score"])} for e in ner(text)]}))
""",
        local=str(local),
        text=text,
    )
    tok = AutoTokenizer.from_pretrained(local)
    with torch.no_grad():
        hidden = AutoModel.from_pretrained(local)(**tok(text, return_tensors="pt")).last_hidden_state
    assert out["ids"] == tok(text)["input_ids"]
    torch.testing.assert_close(torch.tensor(out["hidden"]), hidden, rtol=1e-5, atol=1e-5)
    expected = [{**e, "score": float(e["score"])} for e in pipeline("token-classification", model=str(local))(text)]
    assert [{k: v for k, v in e.items() if k != "score"} for e in out["ner"]] == [
        {k: v for k, v in e.items() if k != "score"} for e in expected
    ]
    assert [e["score"] for e in out["ner"]] == pytest.approx([e["score"] for e in expected], abs=1e-5)


def test_space_and_dataset_repos(hub, tmp_path):
    app = tmp_path / "space"
    app.mkdir()
    (app / "app.py").write_text("import gradio as gr\n")
    (app / "requirements.txt").write_text("transformers\n")
    out = client(
        hub,
        """
url = api.create_repo("time/demo", repo_type="space", space_sdk="gradio")
info = api.upload_folder(repo_id="time/demo", repo_type="space", folder_path=app)
space = api.space_info("time/demo")
api.create_repo("time/data", repo_type="dataset")
api.upload_file(path_or_fileobj=b"a,b\\n1,2\\n", path_in_repo="data/train.csv", repo_id="time/data",
                repo_type="dataset")
print(json.dumps({
    "url": url, "oid": info.oid, "sha": space.sha, "sdk": space.sdk,
    "files": api.list_repo_files("time/demo", repo_type="space"),
    "app": open(hf_hub_download("time/demo", "app.py", repo_type="space")).read(),
    "csv": open(hf_hub_download("time/data", "data/train.csv", repo_type="dataset")).read(),
    "tree": [f.path for f in api.list_repo_tree("time/data", repo_type="dataset")],
    "as_model": error(lambda: api.model_info("time/demo")),
    "exists": [api.repo_exists("time/data", repo_type="dataset"),
               api.file_exists("time/data", "data/train.csv", repo_type="dataset"),
               api.file_exists("time/data", "data/test.csv", repo_type="dataset")],
    "deleted": api.delete_repo("time/data", repo_type="dataset") or api.repo_exists("time/data", repo_type="dataset"),
}))
""",
        app=str(app),
    )
    assert out["url"] == f"{hub.url}/spaces/time/demo" and out["sha"] == out["oid"] and out["sdk"] == "gradio"
    assert out["files"] == [".gitattributes", "README.md", "app.py", "requirements.txt"]
    assert out["app"] == "import gradio as gr\n" and out["csv"] == "a,b\n1,2\n"
    assert out["tree"] == ["data", ".gitattributes"]
    assert out["as_model"]["type"] == "RepositoryNotFoundError"
    assert out["exists"] == [True, True, False] and out["deleted"] is False
    assert hub.repo("time/data", "dataset") is None


def test_collections(hub):
    out = client(
        hub,
        """
api.create_repo("time/tiny")
first = api.create_collection("Time models", namespace="time", description="Tiny encoders", exists_ok=True)
again = api.create_collection("Time models", namespace="time", exists_ok=True)
api.add_collection_item(first.slug, "time/tiny", "model", note="Danish", exists_ok=True)
col = api.add_collection_item(first.slug, "time/tiny", "model", exists_ok=True)
print(json.dumps({
    "slugs": [first.slug, again.slug, api.get_collection(first.slug).slug],
    "items": [(i.item_id, i.item_type, i.note) for i in col.items],
    "duplicate": error(lambda: api.add_collection_item(first.slug, "time/tiny", "model")),
    "missing": error(lambda: api.add_collection_item(first.slug, "time/nothing", "model")),
    "reader": error(lambda: api.create_collection("Other", namespace="time", token=read)),
}))
""",
        read=READ_TOKEN,
    )
    assert len(set(out["slugs"])) == 1 and out["slugs"][0].startswith("time/time-models-")
    assert out["items"] == [["time/tiny", "model", "Danish"]]
    assert (out["duplicate"]["status"], out["missing"]["status"], out["reader"]["status"]) == (409, 404, 403)
    assert len(hub.collections) == 1
