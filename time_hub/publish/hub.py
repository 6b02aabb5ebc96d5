"""`time-hub publish`: a run -> a complete Hub repository (weights, config, tokenizer, card, plots, JSON), pushed.

    time-hub publish runs/demo-da --lang da --size xs --dry_run true
    time-hub publish runs/demo-da --lang da --size xs --base_model intfloat/multilingual-e5-small
    time-hub publish runs/demo-da --lang da --size xs --task ner --model_dir runs/demo-da/tasks/ner

The repository is staged in a folder first (`<run>/publish/<name>`, replaced atomically), so a dry run shows exactly
what would be uploaded. Pushing is `create_repo(exist_ok=True)` + one `upload_folder` commit: the client skips files
whose content the Hub already has, so republishing unchanged content makes no commit. Then a tag per release
(`v<time-hub version>` by default) and, optionally, a collection entry. The token comes from the standard places
(`HF_TOKEN`, `hf auth login`) and is never printed or written; the card is validated by the Hub before anything is
created, so a rejected token or card leaves the Hub untouched.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from time_hub.arguments import InputError, parse_command
from time_hub.atomic import staged_folder
from time_hub.publish.card import CardInputs, write_card
from time_hub.run_dir import DistillationSettings, RunConfig, RunDir
from time_hub.tasks.registry import TASKS

logger = logging.getLogger(__name__)
# Files of a model folder that belong in its Hub repository (training state, optimizer and args do not).
MODEL_FILES = (
    "*.safetensors",
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "sentencepiece.bpe.model",
    DistillationSettings.FILE,
    "ud_config.json",  # UD models: label vocabularies and settings beside ud_heads.safetensors
    "mwt.json",  # a UD model's segmenter (in its segmenter/ folder): the multiword-token lexicon
)
SUBMODELS = ("segmenter",)  # folders of a model folder that are models of their own (`time-hub annotate` reads it)


class PublishError(InputError):
    """A clear, single-line reason why nothing (more) was published."""


@dataclass
class PublishArguments:
    run_dir: str = field(metadata={"help": "the `time-hub distill` output folder (after `time-hub select`)"})
    lang: str = field(metadata={"help": "ISO 639-1 code of the model's language (card metadata and repo name)"})
    size: str | None = field(default=None, metadata={"help": "xs, s, m ... for the repo name (default: recipe)"})
    task: str | None = field(default=None, metadata={"help": "publish a fine-tuned model: ner, qa or ud"})
    model_dir: str | None = field(default=None, metadata={"help": "default: <run>/best or <run>/tasks/<task>"})
    repo_id: str | None = field(default=None, metadata={"help": "ORG/NAME (default: <org>/time-<lang>-<size>)"})
    organization: str = field(default="time", metadata={"help": "Hub namespace of the default repo id"})
    base_model: str | None = field(
        default=None, metadata={"help": "Hub id of the teacher (encoder) or of the TiME encoder (task models)"}
    )
    results: list[str] = field(
        default_factory=list, metadata={"help": "results.json files (default: <run>/tasks/*/results*.json)"}
    )
    teacher_results: list[str] = field(default_factory=list, metadata={"help": "teacher results.json (retention)"})
    bench: str | None = field(default=None, metadata={"help": "bench.json (default: <run>/bench/bench.json)"})
    bench_model: str | None = field(default=None, metadata={"help": "this model's name in bench.json"})
    datasets: list[str] = field(default_factory=list, metadata={"help": "Hub ids of the training data (metadata)"})
    dataset_names: list[str] = field(
        default_factory=list, metadata={"help": "RESULTS_DATASET=NAME: public name/Hub id of an evaluated local file"}
    )
    license: str = field(default="apache-2.0", metadata={"help": "license of the published weights"})
    private: bool = field(default=False, metadata={"help": "create the repository as private"})
    revision: str | None = field(default=None, metadata={"help": "branch to push to (created if missing)"})
    tag: str | None = field(default=None, metadata={"help": "release tag (default v<time-hub version>; '' = none)"})
    collection: str | None = field(default=None, metadata={"help": "title of a Hub collection to add the model to"})
    dry_run: bool = field(default=False, metadata={"help": "stage the repository and list it; push nothing"})

    def __post_init__(self):
        if self.task is not None and self.task not in TASKS:
            raise ValueError(f"task must be one of {list(TASKS)}, got {self.task!r}")
        if any("=" not in pair for pair in self.dataset_names):
            raise ValueError(f"dataset_names: expected RESULTS_DATASET=NAME pairs, got {self.dataset_names}")
        if self.repo_id is not None and self.repo_id.count("/") != 1:
            raise ValueError(f"repo_id must be ORG/NAME, got {self.repo_id!r}")


def repo_name(organization: str, lang: str, size: str, task: str | None = None) -> str:
    return f"{organization}/time-{lang}-{size}" + (f"-{task}" if task else "")


def _resolve(args: PublishArguments) -> tuple[CardInputs, Path]:
    run = RunDir(args.run_dir)
    if not RunConfig.exists(run.root):
        raise PublishError(f"{run.root}: no {RunConfig.FILE}; publish a `time-hub distill` output folder")
    recipe = RunConfig.load(run.root).recipe
    size = args.size or recipe.get("student_shape")
    if not size:
        raise PublishError(f"{run.root / RunConfig.FILE}: no student_shape in the recipe; give --size")
    if args.task:
        model_dir = Path(args.model_dir or run.task(args.task))
        results = args.results or sorted(str(p) for p in model_dir.glob("results*.json"))
        base = args.base_model or repo_name(args.organization, args.lang, size)
    else:
        model_dir = Path(args.model_dir or run.encoder)
        results = args.results or [str(p) for p in run.all_task_results()]
        base = args.base_model
    if not model_dir.is_dir():
        raise PublishError(f"{model_dir}: no such model folder")
    bench = args.bench or (str(run.bench) if run.bench.is_file() else None)
    repo_id = args.repo_id or repo_name(args.organization, args.lang, size, args.task)
    inputs = CardInputs(
        run_dir=run.root,
        model_dir=model_dir,
        repo_id=repo_id,
        language=[args.lang],
        license=args.license,
        base_model=base,
        task=args.task,
        results=[Path(p) for p in results],
        teacher_results=[Path(p) for p in args.teacher_results],
        bench=Path(bench) if bench else None,
        bench_model=args.bench_model,
        datasets=args.datasets,
        dataset_names=dict(pair.split("=", 1) for pair in args.dataset_names),
    )
    return inputs, model_dir


def stage(args: PublishArguments) -> tuple[Path, str]:
    """Build the repository folder; returns (folder, repo id). Built in a temp dir, then moved into place."""
    inputs, model_dir = _resolve(args)
    config = json.loads((model_dir / "config.json").read_text())
    if "auto_map" in config:
        raise PublishError(f"{model_dir}/config.json has auto_map: students must load without trust_remote_code")
    target = RunDir(args.run_dir).publish(inputs.repo_id.split("/")[1])
    with staged_folder(target) as tmp:
        for source, target_dir in [(model_dir, tmp)] + [(model_dir / sub, tmp / sub) for sub in SUBMODELS]:
            for pattern in MODEL_FILES if source.is_dir() else ():
                for path in source.glob(pattern):
                    target_dir.mkdir(exist_ok=True)
                    shutil.copyfile(path, target_dir / path.name)
        write_card(inputs, tmp)
    return target, inputs.repo_id


def listing(folder: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(folder)), p.stat().st_size) for p in folder.rglob("*") if p.is_file())


def _token() -> str:
    from huggingface_hub import get_token

    token = get_token()
    if not token:
        raise PublishError("no Hugging Face token: set HF_TOKEN or run `hf auth login` (or use --dry_run true)")
    return token


def check_hub() -> None:
    """Before anything is staged: a token is there, the Hub endpoint answers and accepts it (one line if not)."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(token=_token())
    try:
        api.whoami()
    except HfHubHTTPError as e:
        raise _explain(e, "") from None
    except Exception as e:  # httpx / requests connection errors: no route, refused, DNS, TLS
        if "connect" not in type(e).__name__.lower() and not isinstance(e, OSError):
            raise
        reason = " ".join(str(e).split())[:200] or type(e).__name__
        raise PublishError(f"cannot reach the Hub at {constants.ENDPOINT}: {reason}") from None


def _explain(error: Exception, repo_id: str) -> PublishError:
    status = getattr(getattr(error, "response", None), "status_code", None)
    if status == 401:
        return PublishError("the Hub rejected the token (401): check HF_TOKEN / `hf auth login`")
    if status == 403:
        return PublishError(f"the token may not write to {repo_id.split('/')[0]!r} (403): it needs write access")
    if status is None:
        return PublishError(f"publishing {repo_id} failed: {' '.join(str(error).split())[:300]}")
    return PublishError(f"publishing {repo_id} failed: {error}")


def push_folder(
    folder: Path,
    repo_id: str,
    repo_type: str = "model",
    private: bool = False,
    revision: str | None = None,
    tag: str | None = None,
    space_sdk: str | None = None,
) -> dict:
    """Validate the card, create the repo if needed, commit the folder (a no-op when unchanged), tag the release."""
    from huggingface_hub import HfApi, RepoCard
    from huggingface_hub.errors import HfHubHTTPError

    token = _token()
    api = HfApi(token=token)
    version = metadata.version("time-hub")
    try:
        api.whoami()
        RepoCard.load(folder / "README.md", repo_type=repo_type).validate(repo_type)
        api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True, space_sdk=space_sdk)
        if revision:
            api.create_branch(repo_id, repo_type=repo_type, branch=revision, exist_ok=True)
        before = _head(api, repo_id, repo_type, revision)
        commit = api.upload_folder(
            folder_path=folder,
            repo_id=repo_id,
            repo_type=repo_type,
            revision=revision,
            commit_message=f"Publish {repo_id.split('/')[1]} with time-hub {version}",
        )
        after = _head(api, repo_id, repo_type, revision)
        if tag:
            api.create_tag(repo_id, repo_type=repo_type, tag=tag, revision=after, exist_ok=True)
    except HfHubHTTPError as e:
        raise _explain(e, repo_id) from None
    except ValueError as e:  # the Hub's card validation
        raise PublishError(f"the Hub rejected the model card of {repo_id}: {e}") from None
    return {"repo_id": repo_id, "url": str(commit.repo_url), "commit": after, "changed": before != after, "tag": tag}


def _head(api, repo_id: str, repo_type: str, revision: str | None) -> str | None:
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    try:
        return api.repo_info(repo_id, repo_type=repo_type, revision=revision).sha
    except (RepositoryNotFoundError, RevisionNotFoundError):
        return None


def add_to_collection(title: str, namespace: str, repo_id: str, repo_type: str = "model") -> str:
    from huggingface_hub import HfApi

    api = HfApi(token=_token())
    collection = api.create_collection(title, namespace=namespace, exists_ok=True)
    api.add_collection_item(collection.slug, repo_id, repo_type, exists_ok=True)
    return collection.slug


def publish(args: PublishArguments) -> dict:
    _resolve(args)  # a bad run folder is named before credentials are asked for
    if not args.dry_run:
        check_hub()  # nothing is staged for a push that cannot happen
    folder, repo_id = stage(args)
    files = listing(folder)
    report = {"repo_id": repo_id, "folder": str(folder), "files": files}
    if args.dry_run:
        return report
    tag = f"v{metadata.version('time-hub')}" if args.tag is None else (args.tag or None)
    report |= push_folder(folder, repo_id, private=args.private, revision=args.revision, tag=tag)
    if args.collection:
        report["collection"] = add_to_collection(args.collection, repo_id.split("/")[0], repo_id)
    return report


def main(argv: list[str]) -> int:
    parsed = parse_command("time-hub publish", __doc__.strip().splitlines()[0], (PublishArguments,), argv, "run_dir")
    if parsed is None:
        return 0
    ((args,), _) = parsed
    report = publish(args)
    print_report(report, args.dry_run)
    if "collection" in report:
        print(f"collection: {report['collection']}")
    return 0


def print_report(report: dict, dry_run: bool, kind: str = "repository") -> None:
    """What was (or, in a dry run, would be) uploaded, and whether the push made a commit."""
    print(f"{'would upload' if dry_run else kind} {report['repo_id']} from {report['folder']}:")
    for name, size in report["files"]:
        print(f"  {size:>12,}  {name}")
    if not dry_run:
        state = "new commit" if report["changed"] else "no change (content already on the Hub)"
        print(f"{report['url']} @ {report['commit']} ({state}); tag: {report.get('tag') or 'none'}")
