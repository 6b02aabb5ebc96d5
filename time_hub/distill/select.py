"""`time-hub select`: score every saved student checkpoint on held-out text and keep the best.

The score is the held-out MiniLMv2 relation loss with exactly the settings the checkpoint was trained with (read from
its `distillation.json`; a checkpoint without them is refused). A random-init student of the same shape is scored
too, as the reference the distilled students must beat. Writes `selection.json` and copies the best checkpoint's
model + tokenizer (no optimizer state) to `<run_dir>/best`.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from transformers import AutoConfig, AutoModel, AutoTokenizer, DataCollatorWithPadding

from time_hub.arguments import parse_command
from time_hub.distill.config import DistillationConfig
from time_hub.distill.data import CorpusArguments, build_validation
from time_hub.distill.trainer import DistillationTrainer, load_teacher
from time_hub.encoder import load_encoder
from time_hub.run_dir import DistillationSettings, RunConfig, RunDir, Selection

logger = logging.getLogger(__name__)
# Checkpoint files that are training state, not the model: not copied to best/.
_TRAINING_STATE = re.compile(
    r"^(optimizer|scheduler|scaler|rng_state.*|distill_projections)\.(pt|pth|bin)$|^training_args\.bin$"
)


@dataclass
class SelectArguments:
    run_dir: str = field(metadata={"help": "Output folder of `time-hub distill` (holds checkpoint-*)."})
    validation_files: list[str] | None = field(
        default=None, metadata={"help": "Held-out text files. Default: the held-out text of the run's recipe."}
    )
    batch_size: int = field(default=16, metadata={"help": "Sequences per scoring batch."})
    best_dir: str = field(default="best", metadata={"help": "Where the best checkpoint is copied (under run_dir)."})
    random_init_seed: int = field(default=42, metadata={"help": "Seed of the random-init reference student."})
    use_cpu: bool = field(default=False, metadata={"help": "Score on CPU even when a GPU is present."})


def checkpoints(run_dir: Path) -> list[Path]:
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such run folder")
    found = RunDir(run_dir).checkpoints()
    if not found:
        raise FileNotFoundError(f"{run_dir}: no checkpoint-* folders to select from")
    return found


def checkpoint_problem(path: Path) -> str | None:
    """Why a checkpoint cannot be scored (half-written by a killed run, damaged), or None when it looks whole."""
    if not RunDir(path.parent).is_complete(path):
        return f"incomplete: no {RunDir.COMPLETE} (its write was interrupted)"
    for name in ("config.json", "model.safetensors", DistillationSettings.FILE):
        if not (path / name).is_file():
            return f"no {name} (an incomplete checkpoint, e.g. of a killed run)"
    try:
        with safe_open(str(path / "model.safetensors"), "pt") as weights:
            for key in weights.keys():
                weights.get_slice(key)  # the header's offsets must fit in the file
        DistillationSettings.load(path)
    except (SafetensorError, OSError, ValueError) as e:
        return f"unreadable: {' '.join(str(e).split())[:200]}"
    return None


def checkpoint_settings(path: Path) -> DistillationSettings:
    if not DistillationSettings.exists(path):
        raise ValueError(f"refusing {path}: no {DistillationSettings.FILE}, so its distillation settings are unknown")
    return DistillationSettings.load(path)


def heldout_arguments(args: SelectArguments, run_dir: Path) -> CorpusArguments:
    """The run's corpus arguments (so the held-out text is the one training set aside), with overrides."""
    recipe = RunConfig.load(run_dir).recipe if RunConfig.exists(run_dir) else {}
    names = {f.name for f in fields(CorpusArguments)}
    values = {k: v for k, v in recipe.items() if k in names}
    if args.validation_files:
        values["validation_files"] = args.validation_files
        if not values.get("train_files") and not values.get("dataset_name"):
            values["train_files"] = args.validation_files  # CorpusArguments wants a training source; never read here
    if not values:
        raise ValueError(f"{run_dir}: no {RunConfig.FILE}; pass --validation_files")
    return CorpusArguments(**values)


def score(
    model, teacher, settings: DistillationSettings, heldout, tokenizer, args: SelectArguments, work_dir: str
) -> dict:
    """Held-out relation losses of `model` (eval_loss, eval_qq, ...), through the training loss code itself."""
    config = DistillationConfig(
        output_dir=work_dir,
        report_to="none",
        per_device_eval_batch_size=args.batch_size,
        use_cpu=args.use_cpu,
        teacher_name_or_path=settings.teacher,
        teacher_layer=settings.teacher_layer,
        student_layer=settings.student_layer,
        num_relation_heads=settings.num_relation_heads,
        relations=settings.relations,
        teacher_dtype=settings.teacher_dtype,
        teacher_trust_remote_code=settings.teacher_trust_remote_code,
    )
    collator = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8)
    trainer = DistillationTrainer(model, config, teacher_model=teacher, data_collator=collator)
    metrics = trainer.evaluate(heldout)
    names = ["loss", *settings.relations]
    return {name: round(metrics[f"eval_{name}"], 6) for name in names}


def select(args: SelectArguments) -> Selection:
    run_dir = Path(args.run_dir)
    found, candidates, skipped = checkpoints(run_dir), [], []
    for path in found:
        problem = checkpoint_problem(path)
        if problem:
            logger.warning("skipping %s: %s", path, problem)
            skipped.append({"checkpoint": path.name, "reason": problem})
        else:
            candidates.append(path)
    if not candidates:
        raise ValueError(f"{run_dir}: none of its {len(found)} checkpoints can be scored ({skipped[0]['reason']})")
    settings = checkpoint_settings(candidates[0])
    for path in candidates[1:]:
        if checkpoint_settings(path) != settings:
            raise ValueError(f"{path}: distillation settings differ from {candidates[0]}; cannot compare losses")
    tokenizer = AutoTokenizer.from_pretrained(candidates[0])
    heldout = build_validation(heldout_arguments(args, run_dir), tokenizer)
    teacher = load_teacher(settings.teacher, settings.teacher_dtype, settings.teacher_trust_remote_code)
    results = []
    with tempfile.TemporaryDirectory() as work_dir:
        for path in candidates:
            try:
                model = load_encoder(path)
            except (SafetensorError, OSError, ValueError, RuntimeError) as e:  # damaged past what the check reads
                logger.warning("skipping %s: cannot load it (%s)", path, " ".join(str(e).split())[:200])
                skipped.append({"checkpoint": path.name, "reason": f"cannot load: {str(e).splitlines()[0][:200]}"})
                continue
            losses = score(model, teacher, settings, heldout, tokenizer, args, work_dir)
            results.append({"checkpoint": path.name, "step": int(path.name.split("-")[-1]), **losses})
            logger.info("%s: held-out relation loss %.4f", path.name, losses["loss"])
        torch.manual_seed(args.random_init_seed)
        random_student = AutoModel.from_config(AutoConfig.from_pretrained(candidates[0]))
        random_init = score(random_student, teacher, settings, heldout, tokenizer, args, work_dir)
    if not results:
        raise ValueError(f"{run_dir}: none of its {len(found)} checkpoints could be loaded")
    best = min(results, key=lambda r: r["loss"])
    best_dir = copy_checkpoint(run_dir / best["checkpoint"], run_dir / args.best_dir)
    selection = Selection(
        metric="held-out MiniLMv2 relation loss (lower is better)",
        heldout_sequences=len(heldout),
        settings=settings,
        checkpoints=results,
        random_init=random_init,
        best=best,
        best_dir=str(best_dir),
        skipped=skipped or None,
    )
    selection.save(run_dir)
    return selection


def copy_checkpoint(source: Path, target: Path) -> Path:
    """Copy model, config, tokenizer and settings (not optimizer/RNG state); atomic: a half copy never remains."""
    staging = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging, ignore=lambda d, names: [n for n in names if _TRAINING_STATE.match(n)])
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def main(argv: list[str]) -> int:
    parsed = parse_command("time-hub select", __doc__.strip().splitlines()[0], (SelectArguments,), argv, "run_dir")
    if parsed is None:
        return 0
    ((args,), _) = parsed
    selection = select(args)
    best, rand = selection.best, selection.random_init
    print(f"best checkpoint: {selection.best_dir} ({best['checkpoint']}, step {best['step']})")
    print(
        f"held-out relation loss: {best['loss']:.4f} (distilled) vs {rand['loss']:.4f} (random init), "
        f"ratio {best['loss'] / rand['loss']:.3f}"
    )
    for name in selection.settings.relations:
        print(f"  {name}: {best[name]:.4f} vs {rand[name]:.4f}")
    print(f"all scores: {Path(args.run_dir) / Selection.FILE}")
    return 0
