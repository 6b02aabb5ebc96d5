"""What `time-hub bench` can time: a model folder or Hub id, an architecture by name, a student shape, or ONNX.

Architectures we cannot download here are built from their config with random weights: speed does not depend on
the weight values. `xlm-roberta-large` / `xlm-roberta-base` are the published configs; `m`, `s`, `xs` and
`L<layers>-H<hidden>-A<heads>` are students of an XLM-R-Large teacher with its full 250,002-token vocabulary (what
the TiME release ships).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedTokenizerBase, XLMRobertaConfig

from time_hub.distill.student import parse_shape, student_config
from time_hub.encoder import load_encoder

# The published configs (FacebookAI/xlm-roberta-{base,large}/config.json).
_XLMR = dict(
    vocab_size=250002,
    max_position_embeddings=514,
    type_vocab_size=1,
    layer_norm_eps=1e-5,
    pad_token_id=1,
    bos_token_id=0,
    eos_token_id=2,
)
CONFIGS = {
    "xlm-roberta-large": XLMRobertaConfig(
        hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096, **_XLMR
    ),
    "xlm-roberta-base": XLMRobertaConfig(
        hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072, **_XLMR
    ),
}
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def _is_shape(spec: str) -> bool:
    try:
        parse_shape(spec)
    except ValueError:
        return False
    return True


def describe(spec: str) -> str:
    """How `spec` is resolved, for the report: onnx, config (random weights), student shape, or pretrained."""
    if spec.endswith(".onnx"):
        return "onnx"
    if spec in CONFIGS:
        return "architecture (random weights)"
    if _is_shape(spec) and not Path(spec).exists():
        return "student shape of xlm-roberta-large (random weights)"
    return "pretrained"


class OnnxEncoder:
    """An onnxruntime session with the call signature of a transformers model (numpy in, torch out)."""

    def __init__(self, path: str | Path, threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        feeds = {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy()}
        return torch.from_numpy(self.session.run(None, {k: feeds[k] for k in self.input_names})[0])

    def num_parameters(self) -> int:
        import onnx

        graph = onnx.load(str(self.path), load_external_data=False).graph
        return int(sum(np.prod(t.dims) for t in graph.initializer))


@dataclass
class LoadedModel:
    spec: str
    kind: str
    model: torch.nn.Module | OnnxEncoder
    tokenizer: PreTrainedTokenizerBase
    num_parameters: int
    max_length: int


def load(spec: str, tokenizer: str, device: str, dtype: str, threads: int | None = None) -> LoadedModel:
    """Load `spec` for inference on `device` in `dtype`; `tokenizer` is used where the spec has none of its own."""
    kind = describe(spec)
    if kind == "onnx":
        if device != "cpu" or dtype != "fp32":
            raise ValueError(f"{spec}: ONNX models are timed on cpu with fp32 inputs (int8 is inside the graph)")
        folder = Path(spec).parent
        model = OnnxEncoder(spec, threads)
        config = AutoConfig.from_pretrained(folder)
        tok = AutoTokenizer.from_pretrained(folder)
        return LoadedModel(spec, kind, model, tok, model.num_parameters(), _max_length(config, tok))
    tok = AutoTokenizer.from_pretrained(tokenizer if kind != "pretrained" else spec)
    if kind == "pretrained":
        model = load_encoder(spec, DTYPES[dtype])
    else:
        config = CONFIGS.get(spec) or student_config(CONFIGS["xlm-roberta-large"], tok, spec)
        torch.manual_seed(0)
        model = AutoModel.from_config(config, dtype=DTYPES[dtype], add_pooling_layer=False)
    model = model.to(device).eval()
    return LoadedModel(spec, kind, model, tok, model.num_parameters(), _max_length(model.config, tok))


def _max_length(config, tokenizer: PreTrainedTokenizerBase) -> int:
    # RoBERTa-style position ids start after the padding index, so 514 positions hold 512 tokens.
    offset = (config.pad_token_id or 0) + 1 if config.model_type in ("roberta", "xlm-roberta") else 0
    return min(512, config.max_position_embeddings - offset, tokenizer.model_max_length)


def forward(loaded: LoadedModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """One inference forward; returns the first output (hidden states or task logits)."""
    if isinstance(loaded.model, OnnxEncoder):
        return loaded.model(batch["input_ids"], batch["attention_mask"])
    with torch.inference_mode():
        return loaded.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])[0]
