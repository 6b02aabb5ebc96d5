"""One `results.json` schema for every task evaluation; model cards, plots and `time-hub compare` read it.

Schema (version 1), all keys required unless marked optional:

    {
      "schema": 1,
      "task": "ud" | "ner" | "qa",
      "dataset": "path or Hub id of the evaluated data",
      "split": "dev" | "test" | ...,
      "metrics": {"<metric name>": <float, percent 0-100>, ...},
      "model": "path or Hub id of the evaluated model",
      "num_parameters": <int, parameters of the whole fine-tuned model>,
      "seconds": <float, wall time of the evaluation>,
      "examples": <int, sentences (ud, ner) or questions (qa) evaluated>,
      "extra": {...}            # optional: anything task-specific (e.g. per-label scores, settings)
    }

Metric names: ud -> UPOS, XPOS, UFeats, AllTags, Lemmas, UAS, LAS, MLAS, BLEX (CoNLL 2018 F1);
ner -> precision, recall, f1, accuracy (seqeval, entity level); qa -> exact_match, f1 (SQuAD v1.1).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from time_hub.atomic import write_json
from time_hub.tasks.registry import TASKS

SCHEMA_VERSION = 1


@dataclass
class TaskResults:
    task: str
    dataset: str
    split: str
    metrics: dict[str, float]
    model: str
    num_parameters: int
    seconds: float
    examples: int
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {list(TASKS)}, got {self.task!r}")
        for name, value in self.metrics.items():
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 100.0:
                raise ValueError(f"metric {name!r} must be a percentage in [0, 100], got {value!r}")

    def save(self, path: str | Path) -> Path:
        """Write atomically: a crash never leaves a half-written results file behind."""
        return write_json(path, {"schema": SCHEMA_VERSION, **asdict(self)})

    @classmethod
    def load(cls, path: str | Path) -> TaskResults:
        try:
            data = json.loads(Path(path).read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from e
        if data.pop("schema", None) != SCHEMA_VERSION:
            raise ValueError(f"{path}: missing or unsupported 'schema' (expected {SCHEMA_VERSION})")
        names = set(cls.__dataclass_fields__)
        missing = names - {"extra"} - set(data)
        unknown = set(data) - names
        if missing or unknown:
            raise ValueError(f"{path}: missing keys {sorted(missing)}, unknown keys {sorted(unknown)}")
        try:
            return cls(**data)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from e
