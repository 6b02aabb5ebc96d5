"""Publish the built hub to a Hub and load every model back the way users would, in a fresh process.

After `time-hub release recipes/release/cpu.yaml` has built the hub (weights under `runs/hub`, results under
`benchmarks/results/hub`), this script:

1. starts the protocol-level Hub server the tests use (`tests/hub_server.py`: the real `huggingface_hub` client and
   `transformers.from_pretrained` talk to it over HTTP) unless `--endpoint` names another Hub;
2. runs `time-hub release ... --publish true` against it: every stage is up to date and skipped, so only the pushes
   run (one repository per model and task model, the release tag, one collection);
3. writes the Space's models file (`--space_models`, Hub ids of every published model, bench tables from the
   results) and publishes the Space with `time-hub space publish`;
4. in a fresh process with an empty cache and no token: `AutoModel.from_pretrained` for every encoder, the
   transformers `token-classification` pipeline for every NER model, `time_hub`'s raw-text `Pipeline` for every UD
   model (on the first line of the language's text in ../shared: every character must come back), and the Space's
   app built from the models file, listing every language;
5. writes `--out` (JSON): what was published, the tags and collection the Hub holds, each load's seconds and result.

    python benchmarks/hub_publish.py --out benchmarks/results/hub/publish.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT / "tests"))

from hub_server import WRITE_TOKEN, HubServer, hub_env, run_client  # noqa: E402

CLIENT = """
import json, sys, time
from pathlib import Path
from transformers import AutoModel, pipeline
from time_hub.annotate.pipeline import Pipeline
from time_hub.publish.space import load_app, read_models_file
from time_hub.tasks.conllu import sentence_tokens

published, texts, models_file = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
report = {}
for repo_id in published:
    start, kind, text = time.perf_counter(), repo_id.rsplit("-", 1)[-1], texts[repo_id.split("-")[1]]
    try:
        if kind == "ner":
            entities = pipeline("token-classification", model=repo_id, aggregation_strategy="simple")(text)
            result = f"{len(entities)} entities"
        elif kind == "ud":
            sentences = Pipeline.from_pretrained(repo_id)([text])[0]
            surface = "".join(form for s in sentences for form, _, _ in sentence_tokens(s))
            assert surface == "".join(text.split()), f"tokens {surface!r} do not spell the text {text!r}"
            result = f"{len(sentences)} sentences, {sum(len(s.words) for s in sentences)} words"
        else:
            model = AutoModel.from_pretrained(repo_id)
            result = f"{type(model).__name__}, {sum(p.numel() for p in model.parameters()):,} parameters"
        report[repo_id] = {"ok": True, "result": result}
    except Exception as e:  # every model is tried; the report names each failure
        report[repo_id] = {"ok": False, "result": f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"}
    report[repo_id]["seconds"] = round(time.perf_counter() - start, 2)
app = load_app()
demo = app.build_app(read_models_file(models_file))
report["space languages"] = sorted(read_models_file(models_file))
print(json.dumps(report))
"""


def first_line(lang: str) -> str:
    with open(SHARED / "data" / "text" / f"{lang}.txt", encoding="utf-8") as f:
        return next(line.strip() for line in f if line.strip())


def space_models(results: Path, published: list[str], teacher: str, folder: Path) -> dict:
    """The Space's models file (in `folder`): per language and size, the Hub ids published and the bench table of
    the results (a path relative to `folder`)."""
    models: dict = {}
    for encoder in (i for i in published if i.count("-") == 2):
        lang, size = encoder.split("-")[1:]
        tasks = {task: f"{encoder}-{task}" if f"{encoder}-{task}" in published else None for task in ("ner", "ud")}
        bench = results / lang / size / "bench.json"
        models.setdefault(lang, {})[size] = {
            "encoder": encoder, **tasks, "qa": None, "teacher": teacher, "bench": os.path.relpath(bench, folder),
        }  # fmt: skip
    return {"format": 1, "models": models}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="recipes/release/cpu.yaml")
    parser.add_argument("--results_dir", default="benchmarks/results/hub")
    parser.add_argument("--space_models", default="space/models.json", help="written: the Space lists the hub")
    parser.add_argument("--space_repo", default="time/time-hub")
    parser.add_argument("--teacher_id", default="intfloat/multilingual-e5-small", help="the Space's teacher")
    parser.add_argument(
        "--languages",
        default=None,
        help="only these, e.g. '[da, hu]' (default: the recipe's, building any not built yet)",
    )
    parser.add_argument("--hub_dir", default="runs/hub-server", help="the local Hub's storage")
    parser.add_argument("--out", default="benchmarks/results/hub/publish.json")
    args = parser.parse_args()

    with HubServer(ROOT / args.hub_dir) as hub:
        env, start = hub_env(hub, WRITE_TOKEN), time.perf_counter()
        release = [sys.executable, "-m", "time_hub.cli", "release", args.recipe, "--results_dir", args.results_dir,
                   "--publish", "true"]  # fmt: skip
        release += ["--languages", args.languages] if args.languages else []
        proc = subprocess.run(release, env=env, cwd=ROOT, capture_output=True, text=True)
        print(proc.stdout)
        published = [line.split()[1] for line in proc.stdout.splitlines() if line.startswith("published ")]
        push_seconds = time.perf_counter() - start
        if not published:
            print(proc.stderr[-3000:], file=sys.stderr)
            return 1

        teacher = args.teacher_id
        models_file = ROOT / args.space_models
        models_file.parent.mkdir(parents=True, exist_ok=True)
        models_file.write_text(
            json.dumps(space_models(ROOT / args.results_dir, published, teacher, models_file.parent), indent=1)
        )
        space = [sys.executable, "-m", "time_hub.cli", "space", "publish", "--repo_id", args.space_repo,
                 "--models_file", str(models_file)]  # fmt: skip
        space_proc = subprocess.run(space, env=env, cwd=ROOT, capture_output=True, text=True)

        texts = {lang: first_line(lang) for lang in {i.split("-")[1] for i in published}}
        start = time.perf_counter()
        client = run_client(
            f"import sys; sys.argv = ['client', {json.dumps(published)!r}, {json.dumps(texts)!r}, "
            f"{str(models_file)!r}]\n" + CLIENT,
            hub_env(hub),
            timeout=3600,
        )
        loads = json.loads(client.stdout.strip().splitlines()[-1])
        languages = loads.pop("space languages")
        report = {
            "published": len(published),
            "push_seconds": round(push_seconds, 1),
            "load_seconds": round(time.perf_counter() - start, 1),
            "failed_loads": sorted(k for k, v in loads.items() if not v["ok"]),
            "space": {"repo": args.space_repo, "exit_code": space_proc.returncode, "languages": languages},
            "tags": {i: sorted(hub.repo(i).tags) for i in published},
            "collections": {c["title"]: [item["id"] for item in c["items"]] for c in hub.collections.values()},
            "loads": loads,
            "release_failures": [line for line in proc.stdout.splitlines() if line.startswith("FAILED")],
            "hub_errors": hub.errors,
        }
    out = ROOT / args.out
    out.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    print(f"published {len(published)}, failed loads {report['failed_loads']}, Space languages "
          f"{len(report['space']['languages'])} -> {out}")  # fmt: skip
    return 0 if not report["failed_loads"] and space_proc.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
