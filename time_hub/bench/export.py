"""`time-hub export`: a model folder -> ONNX (dynamic batch and sequence), optionally int8, checked against PyTorch.

    time-hub export runs/demo-da/best --output_dir runs/demo-da/onnx --quantize true
    time-hub export runs/ner --output_dir runs/ner/onnx --quantize true --eval_file ../shared/data/ner/da/dev.iob2

Encoders export their last hidden state, token-classification models their logits, QA models start and end logits
(`architectures` in config.json decides), UD models (`ud_heads.safetensors`) the layer mix their heads read
(`mixed_states`: the encoder is the cost; the heads and the tree decoding stay in PyTorch, `time-hub annotate
--onnx`). The output folder holds `model.onnx` (and `model-int8.onnx`: dynamic int8 quantization of the weights with
onnxruntime), the config and tokenizer, and `export.json` with the largest absolute
difference to PyTorch on real sentences (real tokens only) and, with `--eval_file`, NER dev scores of each variant.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForQuestionAnswering,
    AutoModelForTokenClassification,
    AutoTokenizer,
)

from time_hub.arguments import parse_command
from time_hub.atomic import write_json
from time_hub.bench.models import OnnxEncoder

logger = logging.getLogger(__name__)
# architectures suffix -> (Auto class, output names)
HEADS = {
    "ForTokenClassification": (AutoModelForTokenClassification, ["logits"]),
    "ForQuestionAnswering": (AutoModelForQuestionAnswering, ["start_logits", "end_logits"]),
}
ENCODER = (AutoModel, ["last_hidden_state"])


@dataclass
class ExportArguments:
    model: str = field(metadata={"help": "model folder (encoder, token-classification or QA model)"})
    output_dir: str = field(metadata={"help": "folder for model.onnx, model-int8.onnx, config, tokenizer"})
    quantize: bool = field(default=False, metadata={"help": "also write model-int8.onnx (dynamic int8 weights)"})
    sentences_file: str = field(
        default="../shared/data/text/da.txt", metadata={"help": "real sentences for the PyTorch comparison"}
    )
    check_sentences: int = field(default=64, metadata={"help": "sentences compared with PyTorch"})
    eval_file: str | None = field(
        default=None, metadata={"help": "NER dev set (IOB2 file or Hub id): scores PyTorch, ONNX and int8 on it"}
    )
    opset: int = field(default=18, metadata={"help": "ONNX opset"})


class _Outputs(torch.nn.Module):
    """Positional inputs and a tuple of tensors out: what the ONNX exporter wants."""

    def __init__(self, model: torch.nn.Module, names: list[str]):
        super().__init__()
        self.model, self.names = model, names

    def forward(self, input_ids, attention_mask):
        out = self.model(input_ids=input_ids, attention_mask=attention_mask)
        return tuple(out[name] for name in self.names)


class _UDMix(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model, self.config = model, model.encoder.config

    def forward(self, input_ids, attention_mask):
        return {"mixed_states": self.model.mixed_states(input_ids, attention_mask)}


def load_for_export(path: str) -> tuple[torch.nn.Module, list[str]]:
    if (Path(path) / "ud_heads.safetensors").exists():
        from time_hub.tasks.ud_model import UDModel

        return _UDMix(UDModel.from_pretrained(path)).eval(), ["mixed_states"]
    architectures = AutoConfig.from_pretrained(path).architectures or []
    auto, names = next((HEADS[s] for a in architectures for s in HEADS if a.endswith(s)), ENCODER)
    return auto.from_pretrained(path, dtype=torch.float32).eval(), names


def export_onnx(model: torch.nn.Module, names: list[str], tokenizer, path: Path, opset: int) -> Path:
    example = tokenizer(["Et eksempel.", "En lidt længere sætning til eksporten."], padding=True, return_tensors="pt")
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    axes = {0: batch, 1: sequence}
    torch.onnx.export(
        _Outputs(model, names),
        (example["input_ids"], example["attention_mask"]),
        str(path),
        input_names=["input_ids", "attention_mask"],
        output_names=names,
        dynamic_shapes={"input_ids": axes, "attention_mask": axes},
        opset_version=opset,
        dynamo=True,
        external_data=False,
    )
    return path


def quantize_int8(source: Path, target: Path) -> Path:
    """Dynamic int8 quantization of the weights (activations quantized at run time), after ORT's recommended
    pre-processing. Its symbolic shape inference fails on exported position-id arithmetic (`Min(512, sequence)`), so
    only ONNX shape inference and graph optimization run."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = target.with_suffix(".pre.onnx")
    try:
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_dynamic(str(prepared), str(target), weight_type=QuantType.QInt8)
    finally:
        prepared.unlink(missing_ok=True)
    return target


def max_abs_diff(model, names, session: OnnxEncoder, tokenizer, sentences: list[str]) -> float:
    """Largest |PyTorch - ONNX| over the first output on real tokens of real sentences (batches of 16)."""
    worst = 0.0
    for i in range(0, len(sentences), 16):
        batch = tokenizer(sentences[i : i + 16], padding=True, truncation=True, max_length=256, return_tensors="pt")
        with torch.inference_mode():
            ref = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])[names[0]]
        out = session(batch["input_ids"], batch["attention_mask"])
        real = batch["attention_mask"].bool()
        worst = max(worst, float((ref - out).abs()[real].max()))
    return worst


def ner_scores(logits_fn, tokenizer, config, eval_file: str) -> dict[str, float]:
    """Entity-level dev scores of any logits function (PyTorch or ONNX), through the NER inference path."""
    from time_hub.tasks import ner

    sentences = ner.load_ner(eval_file, "dev")
    start = time.perf_counter()
    predicted, _ = ner.tag_words(logits_fn, tokenizer, config, [s.tokens for s in sentences])
    seconds = time.perf_counter() - start
    return ner.entity_scores([s.tags for s in sentences], predicted) | {"seconds": seconds}


def export(args: ExportArguments) -> dict:
    model, names = load_for_export(args.model)  # every input is read before anything is written
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    lines = Path(args.sentences_file).read_text(encoding="utf-8").splitlines()
    sentences = [s for s in lines if s.strip()][: args.check_sentences]
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(out)
    tokenizer.save_pretrained(out)
    variants = {"fp32": export_onnx(model, names, tokenizer, out / "model.onnx", args.opset)}
    if args.quantize:
        variants["int8"] = quantize_int8(variants["fp32"], out / "model-int8.onnx")
    report = {"model": args.model, "outputs": names, "opset": args.opset, "variants": {}}
    for name, path in variants.items():
        session = OnnxEncoder(path)
        report["variants"][name] = {
            "file": path.name,
            "megabytes": path.stat().st_size / 2**20,
            "max_abs_diff_vs_pytorch": max_abs_diff(model, names, session, tokenizer, sentences),
            "checked_sentences": len(sentences),
        }
        if args.eval_file:
            report["variants"][name]["ner_dev"] = ner_scores(session, tokenizer, model.config, args.eval_file)
    if args.eval_file:
        from time_hub.tasks.ner import torch_logits

        report["pytorch_ner_dev"] = ner_scores(torch_logits(model), tokenizer, model.config, args.eval_file)
        report["eval_file"] = args.eval_file
    write_json(out / "export.json", report)
    return report


def main(argv: list[str]) -> int:
    parsed = parse_command("time-hub export", __doc__.strip().splitlines()[0], (ExportArguments,), argv, "model")
    if parsed is None:
        return 0
    ((args,), _) = parsed
    report = export(args)
    for name, variant in report["variants"].items():
        diff = variant["max_abs_diff_vs_pytorch"]
        line = f"{name}: {variant['file']} {variant['megabytes']:.1f} MB, max |diff| vs PyTorch {diff:.2e}"
        if "ner_dev" in variant:
            line += f", NER dev F1 {variant['ner_dev']['f1']:.2f} (PyTorch {report['pytorch_ner_dev']['f1']:.2f})"
        print(line)
    print(f"wrote {Path(args.output_dir) / 'export.json'}")
    return 0
