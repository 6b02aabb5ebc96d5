"""The one way this package loads a base encoder (teacher, student, the encoder under a UD model, a model to time).

No pooler where the architecture has one: token-level pipelines never read it, distillation never trains it, and
checkpoints often do not even store it (so it would be random). Own modeling code (config.json `auto_map`) runs only
with `trust_remote_code`; LTG-BERT-family configs (recognised by `position_bucket_size`, as in `qkv.model_family`)
are refused without it, since their config says model_type "bert" and transformers would quietly load a BERT that
ignores their weights.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path

import torch
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.models.auto.modeling_auto import MODEL_MAPPING
from transformers.utils import logging as hf_logging

logger = logging.getLogger(__name__)


MODEL_FILES = ("config.json", "committee.json")  # a model folder, or a committee of them (tasks/committee.py)


def check_model_source(name: str) -> None:
    """Refuse, before anything loads, a model that is neither a model folder (or file) nor a Hub id.

    A Hub id is only checked for its form here (no network): one that does not exist fails when it loads.
    """
    if "{" in name:  # a committee's member template, e.g. runs/c/member-{i}/best
        return
    path = Path(name).expanduser()
    if path.is_dir():
        if not any((path / f).is_file() for f in MODEL_FILES):
            raise ValueError(f"{name}: not a model folder (no {' or '.join(MODEL_FILES)})")
        return
    if path.exists():
        return
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name:
        raise ValueError(f"{name}: no such model folder")
    try:
        validate_repo_id(name)
    except HFValidationError:
        raise ValueError(f"{name}: neither a model folder nor a Hub model id (name or namespace/name)") from None


def load_encoder(
    name_or_path: str | Path, dtype: torch.dtype = torch.float32, trust_remote_code: bool = False
) -> PreTrainedModel:
    if trust_remote_code:
        return AutoModel.from_pretrained(name_or_path, dtype=dtype, trust_remote_code=True)
    config_dict, _ = PretrainedConfig.get_config_dict(name_or_path)
    if "position_bucket_size" in config_dict:
        raise ValueError(
            f"{name_or_path} is an LTG-BERT-family model (LTG-BERT, HPLT-BERT, NorBERT3) that needs its own modeling "
            "code: set teacher_trust_remote_code: true (if you trust that code)"
        )
    config = AutoConfig.from_pretrained(name_or_path)
    model_class = MODEL_MAPPING.get(type(config), None)
    kwargs = {}
    if model_class is not None and "add_pooling_layer" in inspect.signature(model_class.__init__).parameters:
        kwargs["add_pooling_layer"] = False
    return AutoModel.from_pretrained(name_or_path, config=config, dtype=dtype, **kwargs)


def quiet_load(auto_class, path: str | Path, **kwargs) -> tuple[PreTrainedModel, dict]:
    """(model in float32, loading info) without transformers' loading-report table: the caller reads the info."""
    level, bar = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        return auto_class.from_pretrained(path, dtype=torch.float32, output_loading_info=True, **kwargs)
    finally:
        hf_logging.set_verbosity(level)
        if bar:
            hf_logging.enable_progress_bar()


def load_with_new_head(auto_class, path: str | Path, **kwargs) -> PreTrainedModel:
    """An encoder under a task head that fine-tuning initialises: one log line names the new and the unused weights
    (instead of transformers' loading-report table)."""
    model, info = quiet_load(auto_class, path, **kwargs)
    new, unused = info.get("missing_keys") or [], info.get("unexpected_keys") or []
    logger.info(
        "%s on %s: new head weights %s%s", type(model).__name__, path, ", ".join(sorted(new)) or "none",
        f"; not used: {', '.join(sorted(unused))}" if unused else "",
    )  # fmt: skip
    return model


def random_init_copy(encoder: str | Path, target: Path, seed: int = 0) -> Path:
    """An encoder of `encoder`'s config and tokenizer with random weights drawn with `seed` (no pooler), saved to
    `target` once: the reference a distilled or copied student must beat."""
    from transformers import AutoTokenizer

    if not (target / "config.json").exists():
        torch.manual_seed(seed)
        AutoModel.from_config(AutoConfig.from_pretrained(encoder), add_pooling_layer=False).save_pretrained(target)
        AutoTokenizer.from_pretrained(encoder).save_pretrained(target)
    return target
