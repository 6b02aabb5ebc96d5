"""`DistillationConfig`: `TrainingArguments` plus only what MiniLMv2 distillation adds."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import PretrainedConfig, TrainingArguments

from time_hub.distill.relations import RELATIONS
from time_hub.run_dir import DistillationSettings

TEACHER_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# Teachers deeper than this must name their distillation layer: MiniLMv2 takes an upper-middle layer of large
# teachers and the TiME code used layer 12 of XLM-R-Large's 24, so there is no single right default.
BASE_DEPTH = 12


@dataclass
class DistillationConfig(TrainingArguments):
    """Training arguments for `DistillationTrainer`. Layers are 1-based (layer 12 = the 12th transformer layer)."""

    teacher_name_or_path: str | None = field(
        default=None, metadata={"help": "The frozen teacher: a local folder or a Hub id (required)."}
    )
    teacher_layer: int | None = field(
        default=None,
        metadata={"help": "Teacher layer whose Q/K/V are distilled. Default: the last, for teachers of <= 12 layers."},
    )
    student_layer: int | None = field(
        default=None, metadata={"help": "Student layer that learns the relations. Default: the last."}
    )
    num_relation_heads: int | None = field(
        default=None,
        metadata={"help": "Relation heads A_r. Default: 48 for teachers of hidden size <= 768, else 64 (MiniLMv2)."},
    )
    relations: list[str] = field(
        default_factory=lambda: list(RELATIONS), metadata={"help": "Self-attention relations to distill."}
    )
    teacher_dtype: str = field(
        default="float32", metadata={"help": f"Teacher weights dtype: {', '.join(TEACHER_DTYPES)}."}
    )
    extra_relation_layers: list[str] = field(
        default_factory=list,
        metadata={
            "help": "More layer pairs 'TEACHER:STUDENT' (1-based) whose relations are distilled too, e.g. ['6:3']."
        },
    )
    extra_relation_weight: float = field(
        default=1.0, metadata={"help": "Weight of each extra layer pair's relation loss (logged as rel@T:S)."}
    )
    hidden_loss_weight: float = field(
        default=0.0,
        metadata={
            "help": "Weight of the hidden-state MSE (TinyBERT) of student layers against teacher layers through a "
            "learned projection (logged as hidden@T:S). 0 turns it off."
        },
    )
    hidden_layers: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Layer pairs 'TEACHER:STUDENT' of the hidden-state term. Default: the last teacher layer used "
            "and the student's last layer, so every student parameter is trained."
        },
    )
    # TrainingArguments has no trust_remote_code (transformers 5.x); this one is the teacher's only: the student is
    # always a stock architecture.
    teacher_trust_remote_code: bool = field(
        default=False,
        metadata={
            "help": "Run the teacher's own modeling code (its config.json has auto_map), as LTG-BERT, HPLT-BERT and "
            "NorBERT3 need. Only for teachers whose code you trust: it runs on this machine."
        },
    )
    # Changed default: the collator builds attention masks for both models; never drop columns.
    remove_unused_columns: bool = field(default=False, metadata={"help": "Kept False: inputs feed two models."})
    # Changed default: the model card reports the (non-padding) tokens a student has seen.
    include_num_input_tokens_seen: str | bool = field(
        default="non_padding", metadata={"help": "Counted for the model card: no, all or non_padding."}
    )
    # Changed defaults for DDP: the loss comes from hooked Q/K/V, so the parameters above them (the distillation
    # layer's attention output and FFN, the pooler) never get gradients although the model's outputs use them.
    # find_unused_parameters would trace from those outputs and fail; a static graph learns the used set once.
    ddp_static_graph: bool | None = field(default=True, metadata={"help": "Kept True: see the comment above."})
    ddp_find_unused_parameters: bool | None = field(
        default=False, metadata={"help": "Not needed with a static graph."}
    )

    def __post_init__(self):
        if not self.teacher_name_or_path:
            raise ValueError("teacher_name_or_path is required")
        for name in ("teacher_layer", "student_layer", "num_relation_heads"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.relations = list(self.relations)
        if (
            not self.relations
            or set(self.relations) - set(RELATIONS)
            or len(set(self.relations)) < len(self.relations)
        ):
            raise ValueError(f"relations must be distinct names from {list(RELATIONS)}, got {self.relations}")
        if self.teacher_dtype not in TEACHER_DTYPES:
            raise ValueError(f"teacher_dtype must be one of {list(TEACHER_DTYPES)}, got {self.teacher_dtype!r}")
        for name in ("extra_relation_layers", "hidden_layers"):
            setattr(self, name, [parse_layer_pair(name, pair) for pair in getattr(self, name)])
        for name in ("extra_relation_weight", "hidden_loss_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        if self.hidden_layers and not self.hidden_loss_weight:
            raise ValueError("hidden_layers is set but hidden_loss_weight is 0: set a weight > 0")
        super().__post_init__()

    def resolve(self, teacher_config: PretrainedConfig, student_config: PretrainedConfig) -> DistillationSettings:
        """The settings that define the loss, with defaults filled in and checked against both models."""
        teacher_layers, student_layers = teacher_config.num_hidden_layers, student_config.num_hidden_layers
        teacher_layer = self.teacher_layer
        if teacher_layer is None:
            if teacher_layers > BASE_DEPTH:
                raise ValueError(
                    f"the teacher has {teacher_layers} layers: set teacher_layer explicitly (MiniLMv2 uses an "
                    f"upper-middle layer of large teachers; the TiME code used 12 for XLM-R-Large)"
                )
            teacher_layer = teacher_layers
        student_layer = self.student_layer or student_layers
        if teacher_layer > teacher_layers:
            raise ValueError(f"teacher_layer={teacher_layer} but the teacher has {teacher_layers} layers")
        if student_layer > student_layers:
            raise ValueError(f"student_layer={student_layer} but the student has {student_layers} layers")
        extra, hidden = (layer_pairs(pairs) for pairs in (self.extra_relation_layers, self.hidden_layers))
        if self.hidden_loss_weight and not hidden:
            hidden = [(max([teacher_layer, *(t for t, _ in extra)]), student_layers)]
        for key, pairs in (("extra_relation_layers", extra), ("hidden_layers", hidden)):
            for t, s in pairs:
                if t > teacher_layers or s > student_layers:
                    raise ValueError(
                        f"{key}: pair {t}:{s} is out of range: the teacher has {teacher_layers} layers, the student "
                        f"{student_layers}"
                    )
        if (teacher_layer, student_layer) in extra or len(set(extra)) < len(extra):
            raise ValueError(f"extra_relation_layers {self.extra_relation_layers} repeat a layer pair")
        heads = self.num_relation_heads or (48 if teacher_config.hidden_size <= 768 else 64)
        for who, config in (("teacher", teacher_config), ("student", student_config)):
            if config.hidden_size % heads:
                raise ValueError(
                    f"{who} hidden size {config.hidden_size} is not divisible by num_relation_heads={heads}: "
                    "choose a common divisor of both hidden sizes"
                )
        return DistillationSettings(
            teacher=self.teacher_name_or_path,
            teacher_layer=teacher_layer,
            student_layer=student_layer,
            num_relation_heads=heads,
            relations=list(self.relations),
            teacher_dtype=self.teacher_dtype,
            # None when unused, so that the settings files of runs without them stay as they were.
            extra_relation_layers=[list(p) for p in extra] or None,
            extra_relation_weight=self.extra_relation_weight if extra else None,
            hidden_layers=[list(p) for p in hidden] or None,
            hidden_loss_weight=self.hidden_loss_weight if hidden else None,
            teacher_trust_remote_code=self.teacher_trust_remote_code,
        )


def layer_pairs(pairs: list[str]) -> list[tuple[int, int]]:
    """Normalised 'T:S' strings (see `parse_layer_pair`) as (teacher, student) integer pairs."""
    return [tuple(map(int, pair.split(":"))) for pair in pairs]


def parse_layer_pair(key: str, pair) -> str:
    """'T:S' with positive 1-based layers, normalised; anything else is one clear error naming the key."""
    parts = str(pair).split(":")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) >= 1 for p in parts):
        raise ValueError(f"{key}: {pair!r} is not a layer pair 'TEACHER:STUDENT' of positive integers (e.g. '6:3')")
    return f"{int(parts[0])}:{int(parts[1])}"
