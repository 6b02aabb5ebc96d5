"""`time-hub space`: the Gradio Space (`space/`) run locally, or staged and pushed as a Hub Space.

    time-hub space serve                                   # models found under runs/, on http://127.0.0.1:7860
    time-hub space serve --models_file space/models.json --port 7861
    time-hub space publish --repo_id time/time-demo [--models_file space/models.json] [--dry_run true]

The models file (JSON) lists what the Space may run, per language and size; every id or path in it is the
allow-list (anything else pasted in the UI is refused):

    {"format": 1,
     "models": {"da": {"xs": {"encoder": "time/time-da-xs", "ner": "time/time-da-xs-ner", "ud": "time/time-da-xs-ud",
                             "qa": null, "teacher": "intfloat/multilingual-e5-small",
                             "bench": "bench/da-xs.json"}}}}

Values are Hub ids or local folders (a relative path is read against the models file's folder when it exists
there); `null` or a missing key means "none". `bench` is a `time-hub bench` bench.json (path, or its content inline)
whose table the Speed tab shows. Without a models file, `serve` discovers models under `--runs_dir`: each distill run
(`run_config.json`: encoder `best/`, task models in `tasks/{ner,ud,qa}`, teacher from the recipe, `bench/bench.json`)
and each folder with `ner`/`ud`/`qa` model subfolders, labelled by language (from the recipe or the folder name)
and by "<path> (<shape>)".

`publish` stages `space/` (app, README with the `models:` front matter rewritten from the models file,
requirements.txt), the models file with bench tables inlined, and a copy of the `time_hub` sources (the package is
not on PyPI, and the app imports it), then pushes it with `push_folder(..., repo_type="space", space_sdk="gradio")`:
republishing unchanged content makes no commit. A published models file must list Hub ids only.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from time_hub.arguments import InputError, parse_command
from time_hub.run_dir import RunConfig, RunDir
from time_hub.tasks.registry import TASKS

SPACE_DIR = Path(__file__).resolve().parents[2] / "space"
PACKAGE_DIR = Path(__file__).resolve().parents[1]
ROLES = ("encoder", *TASKS, "teacher")
FORMAT = 1
MODELS_FILE = "models.json"
STAGED = ("app.py", "inference.py", "README.md", "requirements.txt")  # space/ files the Hub Space needs
HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
SKIP = re.compile(r"^(checkpoint-\d+|publish|bench|\..*)$")  # folders discovery never enters


class SpaceError(InputError):
    """A clear, single-line reason why the Space cannot be served or published."""


def read_models_file(path: str | Path) -> dict:
    """`{lang: {size: {role: id/path or None, "bench": ...}}}` from a models file, validated, paths resolved."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise SpaceError(f"{path}: cannot read the models file: {e}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("models"), dict):
        raise SpaceError(f'{path}: expected {{"format": {FORMAT}, "models": {{lang: {{size: {{...}}}}}}}}')
    models: dict = {}
    for lang, sizes in data["models"].items():
        for size, entry in (sizes or {}).items():
            unknown = set(entry) - {*ROLES, "bench"} if isinstance(entry, dict) else {"(not a mapping)"}
            if unknown:
                raise SpaceError(
                    f"{path}: {lang}/{size}: unknown keys {sorted(unknown)}; expected {[*ROLES, 'bench']}"
                )
            resolved = {role: _resolve(entry.get(role), path.parent) for role in ROLES}
            bench = entry.get("bench")
            resolved["bench"] = _resolve(bench, path.parent) if isinstance(bench, str) else bench
            models.setdefault(lang, {})[size] = resolved
    if not models:
        raise SpaceError(f"{path}: lists no models")
    return models


def _resolve(value: str | None, base: Path) -> str | None:
    if not value:
        return None
    local = base / value
    return os.path.abspath(local) if not Path(value).is_absolute() and local.exists() else value


def allowed(models: dict) -> set[str]:
    """Every model id/path the models file lists (the UI's allow-list)."""
    return {e[r] for sizes in models.values() for e in sizes.values() for r in ROLES if e.get(r)}


def model_kind(folder: Path) -> str | None:
    """ "ud", "ner", "qa", "encoder" for a saved model folder, else None."""
    if (folder / "ud_config.json").is_file():
        return "ud"
    config = folder / "config.json"
    if not config.is_file() or not any(folder.glob("*.safetensors")):
        return None
    architectures = " ".join(json.loads(config.read_text()).get("architectures") or [])
    return (
        "ner"
        if "TokenClassification" in architectures
        else "qa"
        if "QuestionAnswering" in architectures
        else "encoder"
    )


def discover(runs_dir: str | Path) -> dict:
    """Models found under `runs_dir` (see the module docstring), in the models-file shape."""
    runs_dir = Path(runs_dir)
    found: list[tuple[str, str, dict]] = []
    for root, dirs, _ in os.walk(runs_dir):
        folder = Path(root)
        dirs[:] = sorted(d for d in dirs if not SKIP.match(d))
        if RunConfig.exists(folder):  # a run's tasks/ and best/ belong to the run's entry
            dirs[:] = [d for d in dirs if d not in ("tasks", "best")]
        if len(folder.relative_to(runs_dir).parts) >= 4:
            dirs[:] = []
        entry = _entry(folder, runs_dir)
        if entry:
            found.append(entry)
            dirs[:] = [d for d in dirs if d not in ("tasks", "best")]  # they are this entry's
    teachers = [(lang, e["teacher"]) for lang, _, e in found if e["teacher"]]
    models: dict = {}
    for lang, size, entry in found:
        if not entry["teacher"] and teachers:  # fine-tuned folders do not record their teacher: use a run's
            entry["teacher"] = next((t for tl, t in teachers if tl == lang), teachers[0][1])
        models.setdefault(lang, {})[size] = entry
    return models


def _entry(folder: Path, runs_dir: Path) -> tuple[str, str, dict] | None:
    tasks, run = {}, RunDir(folder)
    for task in TASKS:
        for candidate in (run.task(task), folder / task):
            if candidate.is_dir() and model_kind(candidate) == task:
                tasks[task] = os.path.abspath(candidate)
                break
    recipe = RunConfig.load(folder).recipe if RunConfig.exists(folder) else {}
    encoder = next((p for p in (run.best, folder) if recipe and model_kind(p) == "encoder"), None)
    if not tasks and encoder is None:
        return None
    rel = folder.relative_to(runs_dir).as_posix() if folder != runs_dir else folder.name
    entry = {role: tasks.get(role) for role in TASKS} | {
        "encoder": os.path.abspath(encoder) if encoder else None,
        "teacher": _teacher(recipe.get("teacher_name_or_path"), runs_dir),
        "bench": os.path.abspath(run.bench) if run.bench.is_file() else None,
    }
    shape = recipe.get("student_shape") or _shape(Path(entry["encoder"] or next(iter(tasks.values()))))
    return _language(recipe, rel), f"{rel} ({shape})", entry


def _teacher(name: str | None, runs_dir: Path) -> str | None:
    """The recipe's teacher: a path relative to where the run was started (cwd or the runs folder's parent)."""
    if not name:
        return None
    for base in (Path.cwd(), runs_dir.resolve().parent):
        if (base / name).is_dir():
            return os.path.abspath(base / name)
    return name


def _shape(folder: Path) -> str:
    config = json.loads((folder / "config.json").read_text())
    return f"L{config.get('num_hidden_layers')}-H{config.get('hidden_size')}"


def _language(recipe: dict, rel: str) -> str:
    """ISO code from the recipe's text file name (`da.txt`) or dataset config, else a 2-letter part of the path."""
    files = recipe.get("train_files") or []
    candidates = [Path(files[0]).stem] if files else []
    candidates += [recipe.get("dataset_config") or ""] + re.split(r"[/_.\-]", rel)
    return next((c for c in candidates if len(c) in (2, 3) and c.isalpha() and c.islower()), "und")


def load_app():
    """The `space/app.py` module of this checkout (it imports its sibling `inference.py`)."""
    if not (SPACE_DIR / "app.py").is_file():
        raise SpaceError(f"{SPACE_DIR}/app.py not found: `time-hub space` needs a source checkout of time-hub")
    if str(SPACE_DIR) not in sys.path:
        sys.path.insert(0, str(SPACE_DIR))
    return importlib.import_module("app")


def hub_models(models_file: str | Path) -> tuple[dict, list[str]]:
    """A models file's models and the ids they list, refusing local folders (a Space on the Hub cannot read them)."""
    models = read_models_file(models_file)
    ids = sorted(allowed(models))
    local = [i for i in ids if not HUB_ID.match(i) or Path(i).exists()]
    if local:
        raise SpaceError(f"{models_file}: a Space cannot read local folders {local}: publish them, list their Hub ids")
    return models, ids


def stage(models_file: str | Path, target: Path) -> Path:
    """Write the Space repository folder: app files, README (models front matter), models file, time_hub copy."""
    models, ids = hub_models(models_file)
    from time_hub.bench.report import load_bench

    for sizes in models.values():
        for entry in sizes.values():
            if isinstance(entry["bench"], str):
                entry["bench"] = load_bench(entry["bench"])
    from time_hub.atomic import staged_folder

    with staged_folder(target) as tmp:
        for name in STAGED:
            shutil.copyfile(SPACE_DIR / name, tmp / name)
        _set_models(tmp / "README.md", ids)
        (tmp / MODELS_FILE).write_text(json.dumps({"format": FORMAT, "models": models}, indent=1) + "\n")
        for source in sorted(PACKAGE_DIR.rglob("*.py")):
            if "__pycache__" not in source.parts:
                copy = tmp / "time_hub" / source.relative_to(PACKAGE_DIR)
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, copy)
    return target


def _set_models(readme: Path, ids: list[str]) -> None:
    """Replace the `models:` list of the README's YAML front matter (what the Hub links the Space to)."""
    text = readme.read_text(encoding="utf-8")
    _, front, body = text.split("---\n", 2)
    meta = yaml.safe_load(front)
    meta["models"] = ids
    readme.write_text("---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n" + body)


@dataclass
class ServeArguments:
    models_file: str | None = field(default=None, metadata={"help": "a models file (default: discover --runs_dir)"})
    runs_dir: str = field(default="runs", metadata={"help": "where to find models without a models file"})
    host: str = field(default="127.0.0.1", metadata={"help": "address to listen on (0.0.0.0: every interface)"})
    port: int = field(default=7860, metadata={"help": "port to listen on"})


@dataclass
class SpacePublishArguments:
    repo_id: str = field(metadata={"help": "ORG/NAME of the Space"})
    models_file: str = field(default=str(SPACE_DIR / MODELS_FILE), metadata={"help": "models file (Hub ids)"})
    stage_dir: str | None = field(default=None, metadata={"help": "staging folder (default runs/spaces/<NAME>)"})
    private: bool = field(default=False, metadata={"help": "create the Space as private"})
    dry_run: bool = field(default=False, metadata={"help": "stage the Space and list it; push nothing"})

    def __post_init__(self):
        if not HUB_ID.match(self.repo_id):
            raise ValueError(f"repo_id must be ORG/NAME, got {self.repo_id!r}")


def serve(args: ServeArguments) -> None:
    models = read_models_file(args.models_file) if args.models_file else discover(args.runs_dir)
    if not models:
        raise SpaceError(f"no models under {args.runs_dir}: run `make demo` / `time-hub finetune`, or --models_file")
    for lang, sizes in models.items():
        for size, entry in sizes.items():
            print(f"{lang} / {size}: " + ", ".join(f"{r}={entry[r]}" for r in ROLES if entry.get(r)))
    app = load_app()
    app.launch(app.build_app(models), server_name=args.host, server_port=args.port)


def publish(args: SpacePublishArguments) -> dict:
    from time_hub.publish.hub import check_hub, listing, push_folder

    hub_models(args.models_file)  # the models file is checked before credentials are asked for
    if not args.dry_run:
        check_hub()  # nothing is staged for a push that cannot happen
    target = Path(args.stage_dir or Path("runs") / "spaces" / args.repo_id.split("/")[1])
    folder = stage(args.models_file, target)
    report = {"repo_id": args.repo_id, "folder": str(folder), "files": listing(folder)}
    if not args.dry_run:
        report |= push_folder(folder, args.repo_id, repo_type="space", private=args.private, space_sdk="gradio")
    return report


def main(argv: list[str]) -> int:
    from time_hub.publish.hub import print_report

    commands = {"serve": ServeArguments, "publish": SpacePublishArguments}
    description = __doc__.strip().splitlines()[0]
    if not argv or argv[0] not in commands:
        parse_command("time-hub space {serve,publish}", description, tuple(commands.values()), ["--help"])
        if argv and argv[0] not in ("-h", "--help"):
            raise InputError(f"the command line: unknown space command {argv[0]!r} (serve or publish)")
        return 0
    prog, classes = f"time-hub space {argv[0]}", (commands[argv[0]],)
    parsed = parse_command(prog, description, classes, argv[1:], empty_is_help=argv[0] != "serve")
    if parsed is None:
        return 0
    ((args,), _) = parsed
    if argv[0] == "serve":
        serve(args)
        return 0
    print_report(publish(args), args.dry_run, "space")
    return 0
