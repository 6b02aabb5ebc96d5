"""Student models: named TiME shapes, a stock transformers architecture of the teacher's family, and init.

The student must load with plain `AutoModel.from_pretrained` (no remote code) and share the teacher's tokenizer, so
its vocabulary size, special-token ids and position range come from the teacher's tokenizer and config. (The
original TiME code kept BERT's pad id 0 under the XLM-R tokenizer, where 0 is `<s>`: `nn.Embedding(padding_idx=0)`
then froze the `<s>` embedding. Here the pad id is always the tokenizer's.)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import (
    AutoModel,
    BertConfig,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    RobertaConfig,
    XLMRobertaConfig,
)

from time_hub.compress.prune import PruneArguments, prune, resolve_layers
from time_hub.distill.qkv import model_family
from time_hub.encoder import load_encoder

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudentShape:
    """Depth and width of an absolute-position BERT-style student; FFN = 4 x hidden unless given."""

    num_layers: int
    hidden_size: int
    num_heads: int
    intermediate_size: int | None = None

    def __post_init__(self):
        if min(self.num_layers, self.hidden_size, self.num_heads) < 1 or self.hidden_size % self.num_heads:
            raise ValueError(f"invalid student shape {self}: hidden_size must be a positive multiple of num_heads")

    @property
    def ffn_size(self) -> int:
        return self.intermediate_size or 4 * self.hidden_size


SHAPES = {
    "m": StudentShape(6, 768, 12),
    "s": StudentShape(6, 384, 12),
    "xs": StudentShape(4, 384, 12),
}
_EXPLICIT = re.compile(r"^L(\d+)-H(\d+)-A(\d+)(?:-I(\d+))?$")


def parse_shape(spec: str | StudentShape) -> StudentShape:
    """A named size (`m`, `s`, `xs`) or an explicit `L<layers>-H<hidden>-A<heads>[-I<ffn>]`, e.g. `L4-H256-A4`."""
    if isinstance(spec, StudentShape):
        return spec
    if spec in SHAPES:
        return SHAPES[spec]
    match = _EXPLICIT.match(spec)
    if not match:
        raise ValueError(
            f"unknown student shape {spec!r}: use one of {sorted(SHAPES)} or L<layers>-H<hidden>-A<heads>"
        )
    layers, hidden, heads, ffn = (int(g) if g else None for g in match.groups())
    return StudentShape(layers, hidden, heads, ffn)


@dataclass
class StudentArguments:
    """How the student is made (recipe keys)."""

    student_shape: str = field(
        default="xs", metadata={"help": "m, s, xs, or L<layers>-H<hidden>-A<heads>[-I<ffn>] (absolute positions)."}
    )
    student_init: str = field(
        default="random",
        metadata={
            "help": "random (the paper); teacher (copy embeddings/evenly spaced layers where shapes match); prune "
            "(cut the shape out of the teacher: its layers, most important heads and FFN neurons, hidden size by "
            "SVD or slice; `time-hub prune`, run as part of distill)."
        },
    )
    student_layers: str | None = field(
        default=None,
        metadata={
            "help": "Teacher layers (0-based) a pruned student keeps: every-K, last-K, first-K or 0,3,7,11. Default: "
            "evenly spaced, ending at the top layer (as student_init=teacher)."
        },
    )
    student_hidden_init: str = field(
        default="svd", metadata={"help": "prune: a smaller hidden size by svd (principal directions) or slice."}
    )
    prune_importance_lines: int = field(
        default=1000, metadata={"help": "prune: corpus lines of the head/FFN/hidden importance pass."}
    )
    student_name_or_path: str | None = field(
        default=None, metadata={"help": "Start from an existing student instead of building one (e.g. two-step KD)."}
    )

    def __post_init__(self):
        shape = parse_shape(self.student_shape)
        if self.student_init not in STUDENT_INITS:
            raise ValueError(f"student_init must be one of {list(STUDENT_INITS)}, got {self.student_init!r}")
        if self.student_hidden_init not in ("svd", "slice"):
            raise ValueError(f"student_hidden_init must be svd or slice, got {self.student_hidden_init!r}")
        if self.prune_importance_lines < 1:
            raise ValueError(f"prune_importance_lines must be positive, got {self.prune_importance_lines}")
        if self.student_layers is not None:
            if self.student_init != "prune":
                raise ValueError("student_layers is only used with student_init: prune")
            layers = resolve_layers(self.student_layers, None)
            if layers and len(layers) != shape.num_layers:
                raise ValueError(
                    f"student_layers {self.student_layers} keeps {len(layers)} layers, student_shape "
                    f"{self.student_shape} has {shape.num_layers}"
                )


STUDENT_INITS = ("random", "teacher", "prune")


def evenly_spaced_layers(teacher_layers: int, student_layers: int) -> list[int]:
    """0-based teacher layers for a student of `student_layers`: evenly spaced, ending at the top layer."""
    return [round((i + 1) * teacher_layers / student_layers) - 1 for i in range(student_layers)]


# Teacher family (`model_family`) -> stock student config class. Relative/rotary-position teachers (DeBERTa,
# LTG-BERT, ModernBERT) get an absolute-position BERT.
_FAMILY = {
    "xlm-roberta": XLMRobertaConfig,
    "roberta": RobertaConfig,
    "bert": BertConfig,
    "deberta-v2": BertConfig,
    "modernbert": BertConfig,
    "ltgbert": BertConfig,
}


def student_config(
    teacher_config: PretrainedConfig, tokenizer: PreTrainedTokenizerBase, shape: str | StudentShape
) -> PretrainedConfig:
    """The config of a student of `shape` that shares the teacher's tokenizer and special ids."""
    shape = parse_shape(shape)
    teacher_family = model_family(teacher_config)
    family = _FAMILY.get(teacher_family)
    if family is None:
        raise ValueError(f"no student family for teacher model_type={teacher_family!r}; known: {sorted(_FAMILY)}")
    vocab_size = max(len(tokenizer), teacher_config.vocab_size)
    positions = getattr(teacher_config, "max_position_embeddings", None) or tokenizer.model_max_length
    if family is BertConfig and teacher_family != "bert":
        # A relative/rotary teacher has no absolute position table to match: the tokenizer bounds the student's.
        positions = min(positions, tokenizer.model_max_length)
    ids = {
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.cls_token_id,
        "eos_token_id": tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id,
    }
    if ids["pad_token_id"] is None:
        raise ValueError("the teacher's tokenizer has no pad token")
    return family(
        vocab_size=vocab_size,
        hidden_size=shape.hidden_size,
        num_hidden_layers=shape.num_layers,
        num_attention_heads=shape.num_heads,
        intermediate_size=shape.ffn_size,
        max_position_embeddings=positions,
        type_vocab_size=getattr(teacher_config, "type_vocab_size", 1) or 1,
        layer_norm_eps=getattr(teacher_config, "layer_norm_eps", 1e-12),
        hidden_act="gelu",
        **ids,
    )


def build_student(
    teacher_config: PretrainedConfig,
    tokenizer: PreTrainedTokenizerBase,
    shape: str | StudentShape,
    init: str = "random",
    teacher: PreTrainedModel | None = None,
    seed: int | None = None,
) -> PreTrainedModel:
    """Build a student; `init="teacher"` copies teacher embeddings and evenly spaced layers where shapes match."""
    if seed is not None:
        torch.manual_seed(seed)
    # No pooler: nothing trains it, and token-level users never read it (a published weight must be a trained one).
    student = AutoModel.from_config(student_config(teacher_config, tokenizer, shape), add_pooling_layer=False)
    if init == "teacher":
        if teacher is None:
            raise ValueError("student_init='teacher' needs the teacher model")
        copy_from_teacher(student, teacher)
    elif init != "random":
        raise ValueError(f"unknown student init {init!r}")
    logger.info("student %s: %s parameters", parse_shape(shape), f"{count_parameters(student):,}")
    return student


def copy_from_teacher(student: PreTrainedModel, teacher: PreTrainedModel) -> list[str]:
    """Copy every embedding/layer tensor whose name and shape agree; student layer i takes teacher layer
    round((i + 1) * L_t / L_s) - 1 (evenly spaced, ending at the top layer). Returns the copied names."""
    teacher_family, student_family = model_family(teacher.config), model_family(student.config)
    if teacher_family != student_family:
        raise ValueError(
            f"student_init='teacher' needs a teacher of the student's family ({student_family}), got {teacher_family}"
        )
    source = {k: v for k, v in teacher.base_model.state_dict().items()}
    n_t, n_s = teacher.config.num_hidden_layers, student.config.num_hidden_layers
    layer_map = dict(enumerate(evenly_spaced_layers(n_t, n_s)))
    copied, target = [], student.base_model.state_dict()
    for name, tensor in target.items():
        parts = name.split(".")
        if parts[:2] == ["encoder", "layer"]:
            parts[2] = str(layer_map[int(parts[2])])
        value = source.get(".".join(parts))
        if value is not None and value.shape == tensor.shape:
            tensor.copy_(value.to(tensor.dtype))
            copied.append(name)
    logger.info("student_init=teacher: copied %d of %d tensors (layer map %s)", len(copied), len(target), layer_map)
    if not copied:
        logger.warning("student_init=teacher copied nothing: no tensor shape matches the teacher's")
    return copied


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def prune_student(
    teacher_name_or_path: str, teacher_layers: int, args: StudentArguments, corpus: str, output_dir: str
) -> PreTrainedModel:
    """`student_init: prune`: cut `args.student_shape` out of the teacher into `output_dir` (re-used when its
    `student_init.json` records the same settings, so a resumed run does not prune again); loaded without a pooler."""
    shape = parse_shape(args.student_shape)
    layers = args.student_layers or ",".join(map(str, evenly_spaced_layers(teacher_layers, shape.num_layers)))
    prune_args = PruneArguments(
        model=teacher_name_or_path,
        corpus=corpus,
        output_dir=output_dir,
        layers=layers,
        num_heads=shape.num_heads,
        intermediate_size=shape.ffn_size,
        hidden_size=shape.hidden_size,
        hidden_init=args.student_hidden_init,
        importance_lines=args.prune_importance_lines,
    )
    # Written after a complete prune: a folder pruned with other settings (or half-written) is pruned again.
    done = Path(output_dir) / "student_init.json"
    settings = dataclasses.asdict(prune_args)
    if not done.is_file() or json.loads(done.read_text()) != settings:
        prune(prune_args)
        done.write_text(json.dumps(settings, indent=2) + "\n")
    student = load_encoder(output_dir)
    logger.info(
        "student_init=prune: %s parameters from %s (layers %s)", f"{count_parameters(student):,}", output_dir, layers
    )
    return student
