"""A run folder's layout (`RunDir`) and its small JSON artifacts, each a dataclass with atomic `save` and checked
`load`. Every reader and writer of a run goes through them, so a file's name and keys live in one place.

    <run>/                      `time-hub distill` output_dir (= `time-hub run` output_dir)
      run_config.json           RunConfig: the merged recipe, the resolved loss settings, sizes
      distillation.json         DistillationSettings (also in every checkpoint-N/: `select` compares them)
      card_data.json            what the training run recorded for its card (`time_hub.card_data`)
      checkpoint-N/             student + tokenizer + optimizer state (+ distill_projections.pt), and last
                                checkpoint.complete, written (after fsync) only once everything else is on disk
      student_init/             the pruned teacher the student started from (`student_init: prune`)
      selection.json            Selection: held-out loss of every checkpoint and of a random-init student
      best/                     the selected student (model + tokenizer only): what is published
      stages.json               `time-hub run`'s stage fingerprints
      tasks/<task>/             fine-tuned model, results.json (dev) and results-test.json
      bench/bench.json          `time-hub bench` (schema: `time_hub.bench.report`)
      publish/<repo name>/      the staged Hub repository
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from time_hub.atomic import write_json

logger = logging.getLogger(__name__)


class JsonArtifact:
    """Mixin for a dataclass stored as one JSON file: atomic `save`, `load` that names the file and the bad keys.

    Optional fields left at their default are not written, so files of runs that do not use a feature stay as they
    were."""

    FILE: ClassVar[str]

    def to_dict(self) -> dict:
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, JsonArtifact):
                value = value.to_dict()
            if f.metadata.get("omit_default") and value == _default(f):
                continue
            out[f.name] = value
        return out

    def save(self, folder: str | Path) -> Path:
        return write_json(Path(folder) / self.FILE, self.to_dict())

    @classmethod
    def from_dict(cls, data: dict, where: str):
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected a JSON object")
        names = {f.name: f for f in dataclasses.fields(cls)}
        missing = [n for n, f in names.items() if n not in data and _default(f) is dataclasses.MISSING]
        unknown = sorted(set(data) - set(names))
        if missing or unknown:
            raise ValueError(f"{where}: missing keys {missing}, unknown keys {unknown}")
        hints = typing.get_type_hints(cls)
        values = {}
        for name, value in data.items():
            nested = hints[name]
            if isinstance(nested, type) and issubclass(nested, JsonArtifact):
                value = nested.from_dict(value, f"{where}: key '{name}'")
            values[name] = value
        return cls(**values)

    @classmethod
    def load(cls, folder: str | Path):
        path = Path(folder) / cls.FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from None
        return cls.from_dict(data, str(path))

    @classmethod
    def exists(cls, folder: str | Path) -> bool:
        return (Path(folder) / cls.FILE).is_file()


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _optional(default=None):
    """A field written only when it differs from `default`."""
    return field(default=default, metadata={"omit_default": True})


@dataclass
class DistillationSettings(JsonArtifact):
    """The resolved settings that define the distillation loss (`DistillationConfig.resolve`)."""

    FILE: ClassVar[str] = "distillation.json"
    teacher: str
    teacher_layer: int
    student_layer: int
    num_relation_heads: int
    relations: list[str]
    teacher_dtype: str
    extra_relation_layers: list[list[int]] | None = _optional()
    extra_relation_weight: float | None = _optional()
    hidden_layers: list[list[int]] | None = _optional()
    hidden_loss_weight: float | None = _optional()
    teacher_trust_remote_code: bool = _optional(False)

    @property
    def relation_pairs(self) -> list[tuple[int, int]]:
        """The main (teacher, student) layer pair first, then the extra ones."""
        return [(self.teacher_layer, self.student_layer), *(tuple(p) for p in self.extra_relation_layers or [])]

    @property
    def hidden_pairs(self) -> list[tuple[int, int]]:
        return [tuple(p) for p in self.hidden_layers or []]


@dataclass
class RunConfig(JsonArtifact):
    """What `time-hub distill` was asked to do: read back by `select` (held-out text) and by the card."""

    FILE: ClassVar[str] = "run_config.json"
    recipe: dict
    distillation: DistillationSettings
    student_parameters: int
    train_sequences: int | None
    heldout_sequences: int


@dataclass
class Selection(JsonArtifact):
    """`time-hub select`'s scores: every checkpoint's held-out losses, a random-init student's, the best."""

    FILE: ClassVar[str] = "selection.json"
    metric: str
    heldout_sequences: int
    settings: DistillationSettings
    checkpoints: list[dict]
    random_init: dict
    best: dict
    best_dir: str
    skipped: list[dict] | None = _optional()  # checkpoints that could not be scored, with the reason


@dataclass(frozen=True)
class RunDir:
    """The paths of one run folder (see the module docstring)."""

    root: Path

    def __init__(self, root: str | Path):
        object.__setattr__(self, "root", Path(root))

    CARD_DATA: ClassVar[str] = "card_data.json"
    STAGES: ClassVar[str] = "stages.json"
    TRAINER_STATE: ClassVar[str] = "trainer_state.json"
    PROJECTIONS: ClassVar[str] = "distill_projections.pt"
    COMPLETE: ClassVar[str] = "checkpoint.complete"

    @property
    def best(self) -> Path:
        return self.root / "best"

    @property
    def encoder(self) -> Path:
        """The student to use: `best/` once selected, else the run folder's final save."""
        return self.best if self.best.is_dir() else self.root

    @property
    def student_init(self) -> Path:
        return self.root / "student_init"

    @property
    def card_data(self) -> Path:
        return self.root / self.CARD_DATA

    @property
    def stages(self) -> Path:
        return self.root / self.STAGES

    def task(self, task: str) -> Path:
        return self.root / "tasks" / task

    def task_results(self, task: str, split: str = "dev") -> Path:
        return self.task(task) / ("results.json" if split == "dev" else f"results-{split}.json")

    def all_task_results(self) -> list[Path]:
        return sorted(self.root.glob("tasks/*/results*.json"))

    @property
    def bench_dir(self) -> Path:
        return self.root / "bench"

    @property
    def bench(self) -> Path:
        return self.bench_dir / "bench.json"

    def publish(self, name: str) -> Path:
        return self.root / "publish" / name

    def staged_cards(self) -> list[Path]:
        return sorted(self.root.glob("publish/*/README.md"))

    def checkpoints(self) -> list[Path]:
        """checkpoint-N folders, by step (complete or not)."""
        found = [p for p in self.root.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
        return sorted(found, key=lambda p: int(p.name.split("-")[-1]))

    def is_complete(self, checkpoint: Path, marked: bool | None = None) -> bool:
        """Whether `checkpoint` was written to the end. Runs from before the marker existed have none anywhere: then
        every checkpoint counts as complete (their readers check the files themselves). `marked`: whether any
        checkpoint of the run has a marker, when the caller already knows."""
        if marked is None:
            marked = any((p / self.COMPLETE).is_file() for p in self.checkpoints())
        return (checkpoint / self.COMPLETE).is_file() or not marked

    def last_complete_checkpoint(self, remove_incomplete: bool = False) -> Path | None:
        """The newest complete checkpoint; incomplete ones (a run killed while writing them) are named in a warning
        and, with `remove_incomplete` (resuming: the run will write them again), removed."""
        complete, found = None, self.checkpoints()
        marked = any((p / self.COMPLETE).is_file() for p in found)
        for checkpoint in found:
            if self.is_complete(checkpoint, marked):
                complete = checkpoint
                continue
            what = "removed, the resumed run writes it again" if remove_incomplete else "skipped"
            logger.warning("%s is incomplete (its write was interrupted): %s", checkpoint, what)
            if remove_incomplete:
                shutil.rmtree(checkpoint)
        return complete


def mark_complete(checkpoint: Path, step: int) -> None:
    """Flush every file of a just-written checkpoint to disk, then write its completion marker (atomically)."""
    for path in sorted(checkpoint.rglob("*")):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
    write_json(checkpoint / RunDir.COMPLETE, {"step": step})
    directory = os.open(checkpoint, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
