"""`DistillationConfig`: `TrainingArguments` plus only what MiniLMv2 distillation adds."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import PretrainedConfig, TrainingArguments

from time_hub.distill.relations import RELATIONS

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
        super().__post_init__()

    def resolve(self, teacher_config: PretrainedConfig, student_config: PretrainedConfig) -> dict:
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
        heads = self.num_relation_heads or (48 if teacher_config.hidden_size <= 768 else 64)
        for who, config in (("teacher", teacher_config), ("student", student_config)):
            if config.hidden_size % heads:
                raise ValueError(
                    f"{who} hidden size {config.hidden_size} is not divisible by num_relation_heads={heads}: "
                    "choose a common divisor of both hidden sizes"
                )
        settings = {
            "teacher": self.teacher_name_or_path,
            "teacher_layer": teacher_layer,
            "student_layer": student_layer,
            "num_relation_heads": heads,
            "relations": list(self.relations),
            "teacher_dtype": self.teacher_dtype,
        }
        if self.teacher_trust_remote_code:  # only then, so that the settings of stock teachers stay as they were
            settings["teacher_trust_remote_code"] = True
        return settings
