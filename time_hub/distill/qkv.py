"""Capture the query/key/value projections of one transformer layer with forward hooks.

No `output_attentions` and no recomputation of the layer: the hooks keep the outputs of the projection `nn.Linear`s
that the model computes anyway, so SDPA/flash attention stay usable. One small adapter (module paths) per architecture
family. Every captured Q, K and V is `(batch, seq, hidden)`, heads concatenated in the model's order.

Position information differs by family:

- BERT, RoBERTa, XLM-R: absolute position embeddings are already in the layer input, so Q/K/V are the plain
  projections.
- DeBERTa-v2/v3 (relative positions): the content projections, i.e. Q and K *before* the disentangled
  relative-position terms are added to the scores (the MiniLMv2/TiME relative -> absolute-student case).
- LTG-BERT, HPLT-BERT, NorBERT3 (relative positions; remote code, loaded with `trust_remote_code=True`): the same
  relative -> absolute case. One fused `in_proj_qk` (split into Q | K) and `in_proj_v`, applied to the layer's
  pre-attention LayerNorm output; the models keep hidden states sequence-first, so the captured tensors are
  transposed to `(batch, seq, hidden)`. `in_proj_qk` is applied a second time, later in the layer, to the
  relative-position embeddings; only the first (content) call is kept. Their configs declare no model_type of
  their own ("" or "bert"), so the family is recognised by its `position_bucket_size` field (`model_family`).
- ModernBERT (rotary positions): one fused `Wqkv` projection, split into Q, K, V, and Q and K *after* the rotary
  embedding, rotated per attention head with the model's own `apply_rotary_pos_emb` and the very `(cos, sin)` the
  layer received (its `position_embeddings` keyword: the layer type's base, global or local/sliding-window, at the
  model's position ids, by default `0..seq-1` in every row, so right-padded tokens keep their unpadded positions).
  The relations then see what attention sees. Rotate-half RoPE rotates dimension `i` of a head together with
  `i + head_dim/2`; a relation head (hidden / num_relation_heads wide, e.g. 16 of a 64-wide attention head under the
  default 48 relation heads) would hold only one of each pair, and its Q-K relation would then depend on absolute
  positions, which the model's scores never do. So within each attention head the captured Q and K list their
  dimensions pair by pair (`0, d/2, 1, d/2+1, ...`): one permutation shared by Q and K, which leaves every
  whole-head product unchanged (`Q_a K_a^T` is the model's score matrix when relation heads = attention heads) and
  makes every even-width relation head hold whole pairs, so its relation depends on positions only through their
  difference, as attention does. V is neither rotated nor permuted. Relations are not restricted to the sliding
  window of local layers (a warning says so: prefer a global layer).
- Padding: the captured tensors are always `(batch, seq, hidden)`; a projection output of any other rank (an
  unpadded/varlen forward) is refused with a RuntimeError. Packed sequences (one row, position ids restarting) are
  `(1, total, hidden)` and do not match the batch's attention mask: the relation loss refuses them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

logger = logging.getLogger(__name__)

# (attention module, q, k, keyword arguments of the attention module's call) -> rotated (q, k); (batch, seq, hidden)
Rotary = Callable[[nn.Module, torch.Tensor, torch.Tensor, dict], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class QKVPaths:
    """Where the layers live (relative to the base model) and the q/k/v projections (relative to one layer).

    A projection named for several of query/key/value is fused: its output is split into equal parts along the last
    dimension, in query, key, value order. With `rotary`, a pre-hook on the `attention` module keeps the keyword
    arguments of its call and `rotary` turns the projected Q and K into the ones attention uses. With `seq_first`,
    the projections give `(seq, batch, features)`, transposed to `(batch, seq, features)`.
    """

    layers: str
    query: str
    key: str
    value: str
    attention: str | None = None
    rotary: Rotary | None = None
    seq_first: bool = False


_BERT_LIKE = QKVPaths("encoder.layer", "attention.self.query", "attention.self.key", "attention.self.value")
# DeBERTa-v2/v3: the plain content projections, i.e. Q and K *before* the disentangled relative-position terms are
# added to the attention scores. query_proj/key_proj are also applied to the relative embeddings later in the same
# layer; QKVCapture keeps only the first call of each forward, which is the content projection.
_DEBERTA = QKVPaths(
    "encoder.layer", "attention.self.query_proj", "attention.self.key_proj", "attention.self.value_proj"
)


def _modernbert_rotary(attention: nn.Module, q: torch.Tensor, k: torch.Tensor, kwargs: dict):
    from transformers.models.modernbert.modeling_modernbert import apply_rotary_pos_emb

    position_embeddings = kwargs.get("position_embeddings")
    if position_embeddings is None:
        raise RuntimeError("ModernBERT attention was called without position_embeddings: cannot apply the rotary")
    cos, sin = position_embeddings  # (batch or 1, seq, head_dim), for this layer's type
    heads = q.shape[:-1] + (-1, attention.head_dim)
    q, k = apply_rotary_pos_emb(q.reshape(heads), k.reshape(heads), cos, sin, unsqueeze_dim=2)
    return _pair_rotary_dims(q), _pair_rotary_dims(k)


def _pair_rotary_dims(x: torch.Tensor) -> torch.Tensor:
    """(..., heads, head_dim), rotate-half order -> (..., heads * head_dim), pairs (i, i + head_dim/2) adjacent."""
    return x.unflatten(-1, (2, -1)).transpose(-1, -2).flatten(-3)


# ModernBERT: Q and K after the rotary embedding, rotary pairs adjacent (module docstring); `Wqkv` is (q | k | v).
_MODERNBERT = QKVPaths("layers", "attn.Wqkv", "attn.Wqkv", "attn.Wqkv", attention="attn", rotary=_modernbert_rotary)
# LTG-BERT/HPLT-BERT/NorBERT3: `in_proj_qk` is (q | k) of the pre-LayerNormed (seq, batch, hidden) input; its second
# call, on the relative-position embeddings, comes after the content call and is ignored (first call wins).
_LTGBERT = QKVPaths(
    "transformer.layers", "attention.in_proj_qk", "attention.in_proj_qk", "attention.in_proj_v", seq_first=True
)
ADAPTERS: dict[str, QKVPaths] = {
    "bert": _BERT_LIKE,
    "roberta": _BERT_LIKE,
    "xlm-roberta": _BERT_LIKE,
    "deberta-v2": _DEBERTA,
    "modernbert": _MODERNBERT,
    "ltgbert": _LTGBERT,
}


def model_family(config) -> str | None:
    """The architecture family of a config: its model_type, or "ltgbert" for LTG-BERT/HPLT-BERT/NorBERT3.

    Those ship their own config classes (remote code) that declare no model_type of their own: HPLT's LtgbertConfig
    and NorBERT3's NorbertConfig leave it "", LTG's LtgBertConfig says "bert". All of them, and no transformers
    config, have a `position_bucket_size` field (their relative-position buckets).
    """
    if config is None:
        return None
    if hasattr(config, "position_bucket_size"):
        return "ltgbert"
    return getattr(config, "model_type", None)


def adapter_for(model: nn.Module) -> QKVPaths:
    model_type = model_family(getattr(model, "config", None))
    if model_type not in ADAPTERS:
        raise ValueError(
            f"Q/K/V capture does not support model_type={model_type!r}; supported: {', '.join(sorted(ADAPTERS))}"
        )
    return ADAPTERS[model_type]


def encoder_layers(model: nn.Module) -> nn.ModuleList:
    """The list of transformer layers of a base model or of a task model wrapping one."""
    base = getattr(model, "base_model", model)
    return base.get_submodule(adapter_for(model).layers)


def truncate_after(model: nn.Module, layer: int) -> nn.Module:
    """Drop every layer above `layer` (1-based) in place, so that they are never run. Idempotent."""
    layers = encoder_layers(model)
    if not 1 <= layer <= len(layers):
        raise ValueError(f"layer {layer} is out of range: the model has {len(layers)} layers")
    if layer < len(layers):
        parent, _, name = adapter_for(model).layers.rpartition(".")  # parent "" is the base model itself
        setattr(getattr(model, "base_model", model).get_submodule(parent), name, layers[:layer])
        model.config.num_hidden_layers = layer
    return model


class QKVCapture:
    """Forward hooks that keep Q, K and V of layer `layer` (1-based) of `model` on each forward pass.

    Slots are cleared by a pre-hook on `model` itself, and within a forward pass the first call of each projection
    wins (later calls, e.g. DeBERTa's or LTG-BERT's relative-embedding projections or a gradient-checkpointing
    recomputation, are ignored). Works unchanged when `model` is later wrapped by DDP, since the hooks sit on inner
    modules. Fused projections are split, sequence-first outputs transposed, and rotary adapters rotate Q and K, when
    `qkv` is first read after a forward.
    """

    def __init__(self, model: nn.Module, layer: int):
        paths = adapter_for(model)
        layers = encoder_layers(model)
        if not 1 <= layer <= len(layers):
            raise ValueError(f"layer {layer} is out of range: the model has {len(layers)} layers")
        self.layer = layer
        self._paths = paths
        self._projections = list(dict.fromkeys((paths.query, paths.key, paths.value)))
        self._as_output = False
        self.clear()
        target = layers[layer - 1]
        if getattr(target, "attention_type", None) == "sliding_attention":
            logger.warning(
                "layer %d uses local (sliding-window) attention: its Q-Q/K-K/V-V relations span token pairs that the "
                "model never scores; a global-attention layer is the closer match to MiniLMv2",
                layer,
            )
        self._handles = [
            model.register_forward_pre_hook(lambda module, args: self.clear()),
            model.register_forward_hook(lambda module, args, output: self.qkv if self._as_output else output),
        ]
        for path in self._projections:
            self._handles.append(target.get_submodule(path).register_forward_hook(self._hook(path)))
        self._attention = None
        if paths.rotary is not None:
            self._attention = target.get_submodule(paths.attention)
            self._handles.append(self._attention.register_forward_pre_hook(self._keep_kwargs, with_kwargs=True))

    def _hook(self, path: str):
        def keep_first(module, args, output):
            if self._raw[path] is None:
                self._raw[path] = output

        return keep_first

    def _keep_kwargs(self, module, args, kwargs):
        if self._kwargs is None:
            self._kwargs = dict(kwargs)

    @contextmanager
    def as_model_output(self) -> Iterator[None]:
        """Inside this context the model's forward returns `(q, k, v)` instead of its usual output.

        DDP only synchronises gradients that flow back through the outputs of the wrapped forward (its static-graph
        all-reduce and unused-parameter search both start there); a loss built on hooked tensors alone would train
        each rank on its own without an error.
        """
        self._as_output = True
        try:
            yield
        finally:
            self._as_output = False

    def clear(self) -> None:
        self._raw: dict[str, torch.Tensor | None] = dict.fromkeys(self._projections)
        self._kwargs: dict | None = None
        self._qkv: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    @property
    def qkv(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`(q, k, v)` of the last forward, each `(batch, seq, hidden)` (the same tensors on every read)."""
        if self._qkv is None:
            self._qkv = self._assemble()
        return self._qkv

    def _assemble(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        paths = self._paths
        if any(t is None for t in self._raw.values()) or (paths.rotary is not None and self._kwargs is None):
            raise RuntimeError(f"Q/K/V of layer {self.layer} were not captured: run the model's forward first")
        for path, output in self._raw.items():
            if output.dim() != 3:
                raise RuntimeError(
                    f"layer {self.layer}: {path} gave a {tuple(output.shape)} tensor, not (batch, seq, features); "
                    "Q/K/V capture needs padded batches (unpadded/varlen inputs are not supported)"
                )
        slots = (paths.query, paths.key, paths.value)
        parts = {
            path: iter(output.chunk(n, dim=-1) if (n := slots.count(path)) > 1 else (output,))
            for path, output in self._raw.items()
        }
        q, k, v = (next(parts[path]) for path in slots)
        if paths.seq_first:
            q, k, v = (t.transpose(0, 1) for t in (q, k, v))
        if paths.rotary is not None:
            q, k = paths.rotary(self._attention, q, k, self._kwargs)
        return q, k, v

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


class HiddenCapture:
    """Forward hooks that keep the output hidden states of layers `layers` (1-based) of `model` on each forward:
    `states[layer]` is `(batch, seq, hidden)` (sequence-first families transposed). Cleared before every forward."""

    def __init__(self, model: nn.Module, layers: list[int]):
        all_layers = encoder_layers(model)
        for layer in layers:
            if not 1 <= layer <= len(all_layers):
                raise ValueError(f"layer {layer} is out of range: the model has {len(all_layers)} layers")
        self._seq_first = adapter_for(model).seq_first
        self.states: dict[int, torch.Tensor] = {}
        self._handles = [model.register_forward_pre_hook(lambda module, args: self.states.clear())]
        for layer in layers:
            self._handles.append(all_layers[layer - 1].register_forward_hook(self._hook(layer)))

    def _hook(self, layer: int):
        def keep(module, args, output):
            hidden = output[0] if isinstance(output, tuple) else output
            self.states[layer] = hidden.transpose(0, 1) if self._seq_first else hidden

        return keep

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
