"""Soft committees of shallow students (Tiny language models, arXiv 2507.14871): N independently distilled students,
each fine-tuned on the task, whose task logits are averaged.

A committee folder holds `committee.json`, the members' shared tokenizer and one ordinary fine-tuned model folder per
member (`member-0`, `member-1`, ...). Every task's `evaluate` loads a committee folder through `load`, so
`time-hub evaluate` scores committees and single models alike.

Averaging is of raw logits (tag, entity, start/end, arc and deprel scores), not probabilities. For UD, the arc scores
are averaged before the tree is decoded, and the deprel scores of every member are then read at the decoded heads.
Members run one after another (`parallel=False`) or on a thread each (`parallel=True`): torch releases the GIL inside
its kernels, so members overlap as far as the machine's cores allow.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from torch import nn
from transformers import AutoTokenizer, TrainingArguments

from time_hub.atomic import write_json
from time_hub.tasks.results import TaskResults

logger = logging.getLogger(__name__)

COMMITTEE_FILE = "committee.json"
FORMAT = "time-hub-committee/1"
INDEX = "{i}"


def member_sources(template: str, size: int) -> list[str]:
    """The `size` encoders named by `template`, whose `{i}` is replaced by 0, 1, ... (one distilled student each)."""
    if size < 1:
        raise ValueError(f"committee must be >= 1, got {size}")
    if INDEX not in template:
        raise ValueError(
            f"model {template!r}: a committee needs the member index {INDEX} in the model path, "
            "e.g. runs/committee-da/member-{i}/best (one independently distilled student per member)"
        )
    return [template.replace(INDEX, str(i)) for i in range(size)]


def member_dirs(model_dir: str | Path) -> list[Path] | None:
    """The member folders of a committee folder, or None when `model_dir` is a single model."""
    path = Path(model_dir) / COMMITTEE_FILE
    if not path.is_file():
        return None
    config = json.loads(path.read_text(encoding="utf-8"))
    if config.get("format") != FORMAT:
        raise ValueError(f"{path}: unsupported format {config.get('format')!r}, expected {FORMAT}")
    dirs = [Path(model_dir) / member["folder"] for member in config["members"]]
    if not dirs:
        raise ValueError(f"{path}: the committee has no members")
    return dirs


def _run(members: Sequence[nn.Module], call: Callable[[nn.Module], object], parallel: bool) -> list:
    if not parallel or len(members) == 1:
        return [call(member) for member in members]
    grad, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()

    def in_thread(member: nn.Module):
        with torch.inference_mode(inference), torch.set_grad_enabled(grad):  # both modes are thread-local
            return call(member)

    with ThreadPoolExecutor(len(members)) as pool:
        return list(pool.map(in_thread, members))


def _mean(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    return tensors[0] if len(tensors) == 1 else torch.stack(list(tensors)).mean(0)


class LogitsCommittee(nn.Module):
    """Members of one stock task architecture (token classification, QA); `forward` returns the first member's
    output type with every `*logits` field averaged. The members must share their labels."""

    def __init__(self, members: Sequence[nn.Module], parallel: bool = False):
        super().__init__()
        self.members, self.parallel = nn.ModuleList(members), parallel
        self.config = members[0].config
        for i, member in enumerate(members[1:], 1):
            if getattr(member.config, "id2label", None) != getattr(self.config, "id2label", None):
                raise ValueError(f"committee member {i} has other labels than member 0: {member.config.id2label}")

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, **kwargs):
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, **kwargs}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        outputs = _run(self.members, lambda member: member(**inputs), self.parallel)
        fields = {k: _mean([o[k] for o in outputs]) if k.endswith("logits") else v for k, v in outputs[0].items()}
        return type(outputs[0])(**fields)

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        return sum(member.num_parameters(exclude_embeddings=exclude_embeddings) for member in self.members)


class UDCommittee(nn.Module):
    """`UDModel`s whose predictions are made from averaged tag, arc and deprel scores (the interface `ud_model.predict`
    uses: `labels`, `settings`, `word_vectors`, `predict_logits`, `deprel_logits`)."""

    def __init__(self, members: Sequence[nn.Module], parallel: bool = False):
        super().__init__()
        self.members, self.parallel = nn.ModuleList(members), parallel
        self.labels, self.settings = members[0].labels, members[0].settings
        for i, member in enumerate(members[1:], 1):
            if member.labels != self.labels or member.settings.max_length != self.settings.max_length:
                raise ValueError(f"committee member {i} has other labels or max_length than member 0")

    def word_vectors(self, input_ids, attention_mask, word_starts) -> list[torch.Tensor]:
        """One word-vector tensor per member (members may differ in width)."""
        return _run(self.members, lambda m: m.word_vectors(input_ids, attention_mask, word_starts), self.parallel)

    def predict_logits(self, words: list[torch.Tensor], word_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        outputs = [member.predict_logits(w, word_mask) for member, w in zip(self.members, words)]
        return {name: _mean([o[name] for o in outputs]) for name in outputs[0]}

    def deprel_logits(self, words: list[torch.Tensor], heads: torch.Tensor) -> torch.Tensor:
        return _mean([member.deprel_logits(w, heads) for member, w in zip(self.members, words)])

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        return sum(member.num_parameters(exclude_embeddings=exclude_embeddings) for member in self.members)


def load(model_dir: str | Path, load_one: Callable[[Path], nn.Module], committee: type[nn.Module]) -> nn.Module:
    """`load_one(model_dir)`, or for a committee folder `committee([load_one(member) for each member])` in eval
    mode."""
    dirs = member_dirs(model_dir)
    if dirs is None:
        return load_one(Path(model_dir))
    logger.info("%s: a committee of %d members", model_dir, len(dirs))
    return committee([load_one(d) for d in dirs]).eval()


def finetune(
    task: str,
    task_module,
    template: str,
    size: int,
    train_file: str,
    dev_file: str | None,
    output_dir: str,
    training_args: TrainingArguments,
    evaluate_options: dict | None = None,
    **options,
) -> TaskResults:
    """Fine-tune member i (encoder `template` with `{i}` = i) with seed `training_args.seed + i` into
    `output_dir/member-i`, write `committee.json` and the shared tokenizer, and score the committee on the dev file
    (`results.json`, with every member's own scores in `extra["members"]`)."""
    sources = member_sources(template, size)
    tokenizers = {AutoTokenizer.from_pretrained(s).backend_tokenizer.to_str() for s in dict.fromkeys(sources)}
    if len(tokenizers) > 1:
        raise ValueError(f"the committee members {sources} do not share one tokenizer: logits cannot be averaged")
    out = Path(output_dir)
    members = []
    for i, source in enumerate(sources):
        args = dataclasses.replace(training_args, seed=training_args.seed + i, output_dir=str(out / f"member-{i}"))
        logger.info("committee member %d of %d: %s (seed %d)", i + 1, size, source, args.seed)
        result = task_module.finetune(source, train_file, dev_file, args.output_dir, args, **options)
        members.append(
            {"folder": f"member-{i}", "source": source, "seed": args.seed, "split": result.split, **result.metrics}
        )
    AutoTokenizer.from_pretrained(out / "member-0").save_pretrained(out)
    write_json(out / COMMITTEE_FILE, {"format": FORMAT, "task": task, "members": members})
    split = "dev" if dev_file else "train"
    batch_size = training_args.per_device_eval_batch_size
    results = task_module.evaluate(
        str(out), dev_file or train_file, split, batch_size, None, **(evaluate_options or {})
    )
    results.extra["members"] = members
    results.save(out / "results.json")
    return results
