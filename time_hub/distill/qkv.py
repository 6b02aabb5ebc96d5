"""Capture the query/key/value projections of one transformer layer with forward hooks.

No `output_attentions` and no recomputation: the hooks keep the outputs of the projection `nn.Linear`s that the
model computes anyway, so SDPA/flash attention stay usable. One small adapter (module paths) per architecture family.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class QKVPaths:
    """Where the layers live (relative to the base model) and the q/k/v projections (relative to one layer)."""

    layers: str
    query: str
    key: str
    value: str


_BERT_LIKE = QKVPaths("encoder.layer", "attention.self.query", "attention.self.key", "attention.self.value")
# DeBERTa-v2/v3: the plain content projections, i.e. Q and K *before* the disentangled relative-position terms are
# added to the attention scores. query_proj/key_proj are also applied to the relative embeddings later in the same
# layer; QKVCapture keeps only the first call of each forward, which is the content projection.
_DEBERTA = QKVPaths(
    "encoder.layer", "attention.self.query_proj", "attention.self.key_proj", "attention.self.value_proj"
)
ADAPTERS: dict[str, QKVPaths] = {
    "bert": _BERT_LIKE,
    "roberta": _BERT_LIKE,
    "xlm-roberta": _BERT_LIKE,
    "deberta-v2": _DEBERTA,
}


def adapter_for(model: nn.Module) -> QKVPaths:
    model_type = getattr(getattr(model, "config", None), "model_type", None)
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
        parent, name = adapter_for(model).layers.rsplit(".", 1)
        setattr(getattr(model, "base_model", model).get_submodule(parent), name, layers[:layer])
        model.config.num_hidden_layers = layer
    return model


class QKVCapture:
    """Forward hooks that keep Q, K and V of layer `layer` (1-based) of `model` on each forward pass.

    Slots are cleared by a pre-hook on `model` itself, and within a forward pass the first call of each projection
    wins (later calls, e.g. DeBERTa's relative-embedding projections or a gradient-checkpointing recomputation,
    are ignored). Works unchanged when `model` is later wrapped by DDP, since the hooks sit on inner modules.
    """

    def __init__(self, model: nn.Module, layer: int):
        paths = adapter_for(model)
        layers = encoder_layers(model)
        if not 1 <= layer <= len(layers):
            raise ValueError(f"layer {layer} is out of range: the model has {len(layers)} layers")
        self.layer = layer
        self._outputs: list[torch.Tensor | None] = [None, None, None]
        self._as_output = False
        target = layers[layer - 1]
        self._handles = [
            model.register_forward_pre_hook(lambda module, args: self.clear()),
            model.register_forward_hook(lambda module, args, output: self.qkv if self._as_output else output),
        ]
        for slot, path in enumerate((paths.query, paths.key, paths.value)):
            self._handles.append(target.get_submodule(path).register_forward_hook(self._hook(slot)))

    def _hook(self, slot: int):
        def keep_first(module, args, output):
            if self._outputs[slot] is None:
                self._outputs[slot] = output

        return keep_first

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
        self._outputs = [None, None, None]

    @property
    def qkv(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if any(t is None for t in self._outputs):
            raise RuntimeError(f"Q/K/V of layer {self.layer} were not captured: run the model's forward first")
        return tuple(self._outputs)  # type: ignore[return-value]

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
