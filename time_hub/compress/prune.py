"""`time-hub prune`: cut a smaller encoder from a BERT-family model (layers, heads, FFN, hidden) as a student init.

    time-hub prune ../shared/teachers/me5-small --corpus ../shared/data/text/da.txt --output_dir runs/pruned-da \
        --layers every-3 --num_heads 8 --intermediate_size 1024 --hidden_size 256

Gurgurov et al. (arXiv 2505.16956) start small students from the teacher's own weights instead of random ones. Layers
are kept by index (`--layers`); heads, FFN neurons and hidden dimensions by importance: first-order Taylor,
|gradient x weight| summed over `--importance_lines` corpus lines under a masked-LM loss (the checkpoint's MLM head
if it has one, else the tied-embedding proxy logits = hidden @ word_embeddings^T), in one pass over the kept layers.
A head scores its Q/K/V rows and output-projection columns, an FFN neuron its intermediate row and output column, a
hidden dimension every residual-stream entry it indexes. `--hidden_init svd` instead projects the residual stream on
its top principal directions (collected in the same pass).

The output is a stock model of the source's model_type (only the four shape fields of the config change) in float32
(an initialisation to train on, not a compressed teacher), with the tokenizer and `prune_report.json`. The pooler is
kept (pruned) only where the source stores one. A stock config has hidden = heads x head size, so fewer heads need a
smaller hidden size too (me5-small: 8 heads of 32 -> --hidden_size 256).
"""

from __future__ import annotations

import copy
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM, AutoTokenizer

from time_hub.arguments import parse_command
from time_hub.atomic import staged_folder, write_json
from time_hub.encoder import quiet_load

logger = logging.getLogger(__name__)
SUPPORTED = ("bert", "roberta", "xlm-roberta")
REPORT = "prune_report.json"
_LAYER = re.compile(r"encoder\.layer\.(\d+)\.(.+)")
# How each residual-stream tensor meets the hidden dimension: "in" = its columns (Linear input, embedding width),
# "out" = its rows (Linear output), "vec" = a bias or LayerNorm beta, "gamma" = a LayerNorm scale, "both" = rows and
# columns (pooler). Names are relative to the base model, layer names after `encoder.layer.N.`.
ROLES = {
    "embeddings.word_embeddings.weight": "in",
    "embeddings.position_embeddings.weight": "in",
    "embeddings.token_type_embeddings.weight": "in",
    "embeddings.LayerNorm.weight": "gamma",
    "embeddings.LayerNorm.bias": "vec",
    "attention.self.query.weight": "in",
    "attention.self.key.weight": "in",
    "attention.self.value.weight": "in",
    "attention.output.dense.weight": "out",
    "attention.output.dense.bias": "vec",
    "attention.output.LayerNorm.weight": "gamma",
    "attention.output.LayerNorm.bias": "vec",
    "intermediate.dense.weight": "in",
    "output.dense.weight": "out",
    "output.dense.bias": "vec",
    "output.LayerNorm.weight": "gamma",
    "output.LayerNorm.bias": "vec",
    "pooler.dense.weight": "both",
    "pooler.dense.bias": "vec",
}


@dataclass
class PruneArguments:
    model: str = field(metadata={"help": "source model folder (model_type bert, roberta or xlm-roberta)"})
    corpus: str = field(metadata={"help": "text file (one sentence a line) for the importance pass"})
    output_dir: str = field(metadata={"help": "folder for the pruned model, its tokenizer and prune_report.json"})
    layers: str | list[int] = field(
        default="all",
        metadata={"help": "source layers kept (0-based): all, every-K (counted down from the top layer), last-K, "
                  "first-K, or indices such as 0,3,7,11"},
    )  # fmt: skip
    num_heads: int | None = field(
        default=None, metadata={"help": "heads kept per layer (default all); needs hidden <= heads x head size"}
    )
    intermediate_size: int | None = field(default=None, metadata={"help": "FFN neurons kept per layer (default all)"})
    hidden_size: int | None = field(default=None, metadata={"help": "hidden size (default the source's)"})
    hidden_init: Literal["slice", "svd"] = field(
        default="slice", metadata={"help": "slice: keep the most important dims; svd: top principal directions"}
    )
    importance_lines: int = field(default=2000, metadata={"help": "corpus lines (from the top) for importance"})
    batch_size: int = field(default=16, metadata={"help": "lines per importance batch"})
    max_seq_length: int = field(default=128, metadata={"help": "tokens per line (truncated)"})
    seed: int = field(default=0, metadata={"help": "seed of the MLM masking"})

    def __post_init__(self):
        for name in ("num_heads", "intermediate_size", "hidden_size", "importance_lines", "batch_size"):
            if (value := getattr(self, name)) is not None and value < 1:
                raise ValueError(f"--{name} must be positive, got {value}")
        if self.max_seq_length < 3:
            raise ValueError(f"--max_seq_length must be at least 3, got {self.max_seq_length}")
        if self.hidden_init not in ("slice", "svd"):
            raise ValueError(f"--hidden_init must be slice or svd, got {self.hidden_init!r}")
        resolve_layers(self.layers, None)  # the syntax now; the range once the source's depth is known


@dataclass
class Plan:
    """What survives, in source indices: layers; per kept layer the Q/K rows, V rows (= output-projection columns)
    and FFN neurons; `hidden` = kept dims (slice, int64) or the projection P (svd, float) or None (unchanged)."""

    layers: list[int]
    heads: list[list[int]]
    qk_rows: list[torch.Tensor]
    v_rows: list[torch.Tensor]
    ffn: list[torch.Tensor]
    q_scale: float = 1.0
    hidden: torch.Tensor | None = None


def resolve_layers(spec: str | list[int], n: int | None) -> list[int]:
    """Kept 0-based source layers, ascending (`n=None`: check the syntax only). every-K counts down from the top
    layer (every-3 of 12: 2, 5, 8, 11, the evenly spaced map of student.py), so the top layer is always kept."""
    text = spec.strip() if isinstance(spec, str) else ",".join(map(str, spec))
    where = f"--layers {text}"
    if text == "all":
        return list(range(n or 0))
    if match := re.fullmatch(r"(every|last|first)-(\d+)", text):
        kind, k = match[1], int(match[2])
        if k < 1:
            raise ValueError(f"{where}: K must be at least 1")
        if n is not None and kind != "every" and k > n:
            raise ValueError(f"{where}: the source has only {n} layers")
        if n is None:
            return []
        return {"every": sorted(range(n - 1, -1, -k)), "last": list(range(n - k, n)), "first": list(range(k))}[kind]
    try:
        ids = [int(i) for i in text.split(",")]
    except ValueError:
        raise ValueError(f"{where}: use all, every-K, last-K, first-K or layer indices such as 0,3,7,11") from None
    if len(set(ids)) != len(ids):
        raise ValueError(f"{where}: a layer is given twice")
    for i in ids:
        if i < 0 or (n is not None and i >= n):
            known = f" for the source's {n} layers (0-{n - 1})" if n else " (indices are 0-based)"
            raise ValueError(f"{where}: layer {i} is out of range{known}")
    return sorted(ids)


def target_shape(config, args: PruneArguments) -> tuple[int, int, int]:
    """(heads, hidden, ffn) of the pruned model, or a ValueError naming the option that cannot be met."""
    if config.model_type not in SUPPORTED:
        raise ValueError(f"model_type {config.model_type!r} cannot be pruned; supported: {', '.join(SUPPORTED)}")
    if getattr(config, "position_embedding_type", "absolute") != "absolute":
        raise ValueError(f"position_embedding_type {config.position_embedding_type!r}: only absolute is supported")
    D, A, source_ffn = config.hidden_size, config.num_attention_heads, config.intermediate_size
    heads, hidden, ffn = args.num_heads or A, args.hidden_size or D, args.intermediate_size or source_ffn
    if heads > A:
        raise ValueError(f"--num_heads {heads} exceeds the source's {A} heads")
    if hidden > D:
        raise ValueError(f"--hidden_size {hidden} exceeds the source's {D}")
    if ffn > source_ffn:
        raise ValueError(f"--intermediate_size {ffn} exceeds the source's {source_ffn}")
    if hidden % heads:
        by = f"--num_heads {heads}" if args.num_heads else f"the source's {heads} heads (set --num_heads)"
        raise ValueError(f"--hidden_size {hidden} is not divisible by {by}")
    if hidden // heads > D // A:
        raise ValueError(
            f"--num_heads {heads} with hidden size {hidden} gives heads of {hidden // heads} dims, more than the "
            f"source's {D // A}: a stock {config.model_type} config has hidden = heads x head size, so give "
            f"--hidden_size {heads * (D // A)} or less"
        )
    return heads, hidden, ffn


def read_lines(path: str) -> list[str]:
    lines = [line for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    if not lines:
        raise ValueError(f"--corpus {path}: the file has no non-blank lines")
    return lines


def top_indices(scores: torch.Tensor, k: int) -> torch.Tensor:
    """The k highest-scoring indices, ascending (the kept units keep their order); ties go to the lower index."""
    return torch.sort(torch.argsort(scores, descending=True, stable=True)[:k]).values


def select(t: torch.Tensor, rows: torch.Tensor | None = None, cols: torch.Tensor | None = None) -> torch.Tensor:
    """A Linear weight (or bias, rows only) restricted to some output rows and/or input columns."""
    t = t if rows is None else t[rows]
    return t if cols is None else t[:, cols]


def map_hidden(t: torch.Tensor, role: str | None, hidden: torch.Tensor | None) -> torch.Tensor:
    """A residual-stream tensor in the new hidden basis: `hidden` is the kept dims (slice) or P (svd, H x D)."""
    if hidden is None or role is None:
        return t
    if not hidden.is_floating_point():
        return {"in": lambda: t[:, hidden], "both": lambda: t[hidden][:, hidden]}.get(role, lambda: t[hidden])()
    P = hidden
    if role == "in":  # x' = P x, so a map reading x reads x' through P^T (exact when x lies in the rows' span)
        return t @ P.T
    if role in ("out", "vec"):
        return P @ t
    if role == "both":
        return P @ t @ P.T
    # gamma: LayerNorm normalises and scales per coordinate, so it does not commute with a rotation; the diagonal of
    # P diag(gamma) P^T is the closest per-coordinate scale. An initialisation, not an equivalent model.
    return (P * P) @ t


def principal_directions(count: int, total: torch.Tensor, gram: torch.Tensor, k: int) -> tuple[torch.Tensor, float]:
    """P (k x D, orthonormal rows): the top-k eigenvectors of the centred covariance of the collected states, and the
    share of the variance they hold."""
    mean = total / count
    values, vectors = torch.linalg.eigh(gram / count - torch.outer(mean, mean))
    order = torch.argsort(values, descending=True)[:k]
    share = float(values[order].sum() / values.clamp_min(0).sum())
    return vectors[:, order].T.float().contiguous(), share


def unit_scores(saliency: dict[str, torch.Tensor], layer: int, num_heads: int) -> dict[str, torch.Tensor]:
    """Per-unit importance of one layer from the per-entry |g*w|: qk and v (heads x head dims; Q and K rows share a
    head dim, V rows share theirs with the output-projection columns), heads (their sum) and ffn (neurons)."""

    def s(name: str) -> torch.Tensor:
        return saliency[f"encoder.layer.{layer}.{name}"]

    q = s("attention.self.query.weight").sum(1) + s("attention.self.query.bias")
    k = s("attention.self.key.weight").sum(1) + s("attention.self.key.bias")
    v = s("attention.self.value.weight").sum(1) + s("attention.self.value.bias")
    v = v + s("attention.output.dense.weight").sum(0)
    qk, v = (q + k).view(num_heads, -1), v.view(num_heads, -1)
    ffn = s("intermediate.dense.weight").sum(1) + s("intermediate.dense.bias") + s("output.dense.weight").sum(0)
    return {"qk": qk, "v": v, "heads": qk.sum(1) + v.sum(1), "ffn": ffn}


def role_of(name: str) -> str | None:
    match = _LAYER.fullmatch(name)
    return ROLES.get(match[2] if match else name)


def hidden_scores(saliency: dict[str, torch.Tensor], size: int) -> torch.Tensor:
    """Importance of each hidden dimension: the |g*w| of every entry that lives in it (see ROLES)."""
    scores = torch.zeros(size)
    reduce = {"in": lambda t: t.sum(0), "out": lambda t: t.sum(1), "vec": lambda t: t, "gamma": lambda t: t}
    for name, sal in saliency.items():
        if (role := role_of(name)) in reduce:
            scores += reduce[role](sal)
    return scores


def mask_tokens(
    input_ids: torch.Tensor, special: torch.Tensor, mask_id: int, vocab_size: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking: 15 % of the non-special tokens are predicted (labels; -100 elsewhere), of which 80 % become
    the mask token, 10 % a random token and 10 % stay. Each sequence predicts at least one token."""
    candidates = ~special
    chosen = (torch.rand(input_ids.shape, generator=generator) < 0.15) & candidates
    empty = ~chosen.any(1) & candidates.any(1)
    pick = torch.rand(input_ids.shape, generator=generator).masked_fill(~candidates, -1).argmax(1)
    chosen[empty, pick[empty]] = True
    labels = torch.where(chosen, input_ids, -100)
    roll = torch.rand(input_ids.shape, generator=generator)
    random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator)
    inputs = torch.where(chosen & (roll < 0.8), mask_id, input_ids)
    return torch.where(chosen & (roll >= 0.8) & (roll < 0.9), random_ids, inputs), labels


def mlm_batches(tokenizer, lines: list[str], args: PruneArguments, config) -> Iterator[dict]:
    generator = torch.Generator().manual_seed(args.seed)
    vocab_size = min(len(tokenizer), config.vocab_size)
    # RoBERTa-style positions start after the pad id: the usable length is that much shorter
    offset = (config.pad_token_id or 0) + 1 if config.model_type != "bert" else 0
    max_length = min(args.max_seq_length, config.max_position_embeddings - offset)
    for i in range(0, len(lines), args.batch_size):
        enc = tokenizer(lines[i : i + args.batch_size], truncation=True, max_length=max_length, padding=True,
                        return_special_tokens_mask=True, return_tensors="pt")  # fmt: skip
        special = enc.pop("special_tokens_mask").bool() | ~enc["attention_mask"].bool()
        enc["input_ids"], labels = mask_tokens(enc["input_ids"], special, tokenizer.mask_token_id, vocab_size,
                                               generator)  # fmt: skip
        yield {**enc, "labels": labels}


def importance_pass(
    encoder: torch.nn.Module, head: Callable[[torch.Tensor], torch.Tensor], batches, collect_states: bool = False
) -> tuple[dict[str, torch.Tensor], dict]:
    """Sum over batches of |grad x weight| of every encoder parameter (masked-LM loss, logits = head(hidden) at the
    predicted positions), and with `collect_states` the moments (count, sum, Gram in float64) of the residual
    stream: the embeddings' output and every layer's output at real tokens."""
    encoder.eval()  # no dropout: the importance of the weights as they are
    params = dict(encoder.named_parameters())
    saliency = {name: torch.zeros_like(p) for name, p in params.items()}
    stats = {"batches": 0, "predicted_tokens": 0, "count": 0, "total": 0.0, "gram": 0.0}
    for batch in batches:
        labels = batch.pop("labels")
        out = encoder(**batch, output_hidden_states=collect_states)
        picked = labels != -100
        loss = F.cross_entropy(head(out.last_hidden_state[picked]).float(), labels[picked])
        encoder.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            for name, p in params.items():
                if p.grad is not None:
                    saliency[name] += (p.grad * p).abs()
            if collect_states:
                real = batch["attention_mask"].bool()
                states = torch.cat([h[real] for h in out.hidden_states]).double()
                stats["count"] += len(states)
                stats["total"] = stats["total"] + states.sum(0)
                stats["gram"] = stats["gram"] + states.T @ states
        stats["batches"] += 1
        stats["predicted_tokens"] += int(picked.sum())
    encoder.zero_grad(set_to_none=True)
    return saliency, stats


def prune_state_dict(source: dict[str, torch.Tensor], keys: list[str], plan: Plan) -> dict[str, torch.Tensor]:
    """The pruned model's tensors (named `keys`) from the source's base-model state dict."""
    out = {}
    for key in keys:
        match = _LAYER.fullmatch(key)
        src = f"encoder.layer.{plan.layers[int(match[1])]}.{match[2]}" if match else key
        if src not in source:
            raise ValueError(f"the source has no tensor {src!r} that the pruned model needs")
        t = source[src].float()
        if match:
            i, sub = int(match[1]), match[2]
            if sub.startswith(("attention.self.query.", "attention.self.key.")):
                t = select(t, plan.qk_rows[i])
                # a shorter head divides Q.K by sqrt(new head dim): rescale Q so the kept dims' logits stay the same
                t = t * plan.q_scale if sub.startswith("attention.self.query.") else t
            elif sub.startswith("attention.self.value."):
                t = select(t, plan.v_rows[i])
            elif sub == "attention.output.dense.weight":
                t = select(t, cols=plan.v_rows[i])
            elif sub.startswith("intermediate.dense."):
                t = select(t, plan.ffn[i])
            elif sub == "output.dense.weight":
                t = select(t, cols=plan.ffn[i])
        out[key] = map_hidden(t, role_of(key), plan.hidden).contiguous()
    return out


def _objective(path: str, base: torch.nn.Module) -> tuple[str, torch.nn.Module, Callable]:
    """(name, encoder, head): the checkpoint's MLM head if it loads complete, else the tied-embedding proxy."""
    mlm, info = quiet_load(AutoModelForMaskedLM, path)
    prefix = mlm.base_model_prefix + "."
    if not [k for k in info["missing_keys"] if not k.startswith(prefix)]:
        return "mlm_head", mlm.base_model, next(m for n, m in mlm.named_children() if n != mlm.base_model_prefix)
    embeddings = base.get_input_embeddings().weight
    return "tied_embedding_proxy", base, lambda hidden: hidden @ embeddings.T


def plan_units(config, layers, shape, args, saliency, stats) -> tuple[Plan, float | None]:
    """Per-layer heads, head dims and FFN neurons, and the hidden map, from the importance scores (or all of each
    where nothing is cut: `saliency` is None)."""
    heads, hidden, ffn = shape
    D, A = config.hidden_size, config.num_attention_heads
    dh, new_dh = D // A, hidden // heads
    plan, share = Plan(layers, [], [], [], [], q_scale=(new_dh / dh) ** 0.5), None
    for i in range(len(layers)):
        if saliency is None:
            scores = {"heads": torch.zeros(A), "qk": torch.zeros(A, dh), "v": torch.zeros(A, dh)}
            scores["ffn"] = torch.zeros(config.intermediate_size)
        else:
            scores = unit_scores(saliency, i, A)
        kept = top_indices(scores["heads"], heads).tolist()
        plan.heads.append(kept)
        for rows, part in ((plan.qk_rows, "qk"), (plan.v_rows, "v")):
            dims = [torch.arange(dh) if new_dh == dh else top_indices(scores[part][h], new_dh) for h in kept]
            rows.append(torch.cat([h * dh + d for h, d in zip(kept, dims)]))
        plan.ffn.append(top_indices(scores["ffn"], ffn))
    if args.hidden_init == "svd" and hidden < D:
        plan.hidden, share = principal_directions(stats["count"], stats["total"], stats["gram"], hidden)
    elif hidden < D:
        plan.hidden = top_indices(hidden_scores(saliency, D), hidden)
    return plan, share


def prune(args: PruneArguments) -> dict:
    """Prune `args.model` into `args.output_dir` (replaced only once complete); returns the report it writes."""
    start = time.perf_counter()
    config = AutoConfig.from_pretrained(args.model)
    shape = target_shape(config, args)
    layers = resolve_layers(args.layers, config.num_hidden_layers)
    out = Path(args.output_dir)
    if out.resolve() == Path(args.model).resolve() or out.resolve() in Path(args.model).resolve().parents:
        raise ValueError(f"--output_dir {out} would replace the source model {args.model}")
    lines = read_lines(args.corpus)[: args.importance_lines]
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    heads, hidden, ffn = shape
    # At the source's width there is nothing to cut: an svd map would only rotate the residual stream, which
    # LayerNorm does not commute with (it changes the model; see tests/test_prune.py), so the basis is kept.
    cut_hidden = hidden < config.hidden_size
    needs_pass = cut_hidden or heads < config.num_attention_heads or ffn < config.intermediate_size
    if needs_pass and tokenizer.mask_token_id is None:
        raise ValueError(f"{args.model}: the tokenizer has no mask token, which the importance loss needs")

    base, info = quiet_load(AutoModel, args.model)
    has_pooler = getattr(base, "pooler", None) is not None and not any("pooler" in k for k in info["missing_keys"])
    source = base.state_dict()  # original names: the layer truncation below renames the modules, not this dict
    before = sum(p.numel() for n, p in base.named_parameters() if has_pooler or not n.startswith("pooler."))
    saliency = stats = objective = None
    if needs_pass:
        objective, encoder, head = _objective(args.model, base)
        logger.info("importance objective: %s, on %d lines of %s", objective, len(lines), args.corpus)
        encoder.encoder.layer = torch.nn.ModuleList(encoder.encoder.layer[i] for i in layers)
        encoder.config.num_hidden_layers = len(layers)
        batches = mlm_batches(tokenizer, lines, args, config)
        svd = cut_hidden and args.hidden_init == "svd"
        saliency, stats = importance_pass(encoder, head, batches, collect_states=svd)
    else:
        logger.info("only layers are cut: no importance pass")
    plan, share = plan_units(config, layers, shape, args, saliency, stats)

    new_config = copy.deepcopy(config)
    new_config.num_hidden_layers, new_config.num_attention_heads = len(layers), heads
    new_config.hidden_size, new_config.intermediate_size = hidden, ffn
    new_config.dtype = torch.float32
    model = AutoModel.from_config(new_config, add_pooling_layer=has_pooler, dtype=torch.float32)
    model.load_state_dict(prune_state_dict(source, list(model.state_dict()), plan), strict=True)
    init = None if not cut_hidden else args.hidden_init
    report = {
        "source": args.model,
        "output_dir": args.output_dir,
        "model_type": config.model_type,
        "corpus": args.corpus,
        "lines_used": len(lines) if needs_pass else 0,
        "objective": objective,
        "importance": None if stats is None else {
            "measure": "sum over batches of |gradient x weight|",
            "batches": stats["batches"],
            "predicted_tokens": stats["predicted_tokens"],
        },
        "layers": layers,
        "heads": {"before": config.num_attention_heads, "after": heads, "kept_per_layer": plan.heads},
        "head_size": {"before": config.hidden_size // config.num_attention_heads, "after": hidden // heads},
        "ffn_sizes": {"before": config.intermediate_size, "after": [len(f) for f in plan.ffn]},
        "hidden_size": {"before": config.hidden_size, "after": hidden},
        "hidden_init": init,
        "hidden_note": "LayerNorm is not rotation-equivariant: the svd model is an initialisation, not equivalent"
        if init == "svd" else None,
        "svd_variance_share": share,
        "pooler": has_pooler,
        "parameters": {"before": before, "after": model.num_parameters()},
        "dtype": "float32",
        "settings": {k: getattr(args, k) for k in ("importance_lines", "batch_size", "max_seq_length", "seed")},
    }  # fmt: skip
    if out.exists():
        logger.warning("replacing %s", out)
    with staged_folder(out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        report["seconds"] = round(time.perf_counter() - start, 2)
        write_json(tmp / REPORT, report)
    logger.info("pruned %s -> %s in %.1f s", f"{before:,}", f"{model.num_parameters():,}", report["seconds"])
    return report


def main(argv: list[str]) -> int:
    parsed = parse_command("time-hub prune", __doc__.strip().splitlines()[0], (PruneArguments,), argv, "model")
    if parsed is None:
        return 0
    ((args,), _) = parsed
    report = prune(args)
    p, h = report["parameters"], report["heads"]
    print(f"layers {report['layers']}, heads {h['before']} -> {h['after']}, hidden {report['hidden_size']['before']} "
          f"-> {report['hidden_size']['after']} ({report['hidden_init'] or 'kept'}), FFN "
          f"{report['ffn_sizes']['before']} -> {report['ffn_sizes']['after'][0]}")  # fmt: skip
    print(f"parameters {p['before']:,} -> {p['after']:,}, objective {report['objective']}, {report['seconds']} s")
    print(f"wrote {Path(args.output_dir) / REPORT}")
    return 0
