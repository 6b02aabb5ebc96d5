"""The `time-hub` command: a thin dispatch to the module that owns each subcommand."""

from __future__ import annotations

import importlib
import sys

# subcommand -> (module, function taking argv and returning an exit code, one-line summary)
COMMANDS = {
    "run": ("time_hub.run", "main", "run a recipe end to end: distill, select, fine-tune, bench, card"),
    "recipes": ("time_hub.recipes", "main", "the recipe matrix: list, validate, plan, new (add a language)"),
    "distill": ("time_hub.distill.train", "main", "distill a student from a frozen teacher (MiniLMv2)"),
    "select": ("time_hub.distill.select", "main", "score checkpoints on held-out text and keep the best"),
    "finetune": ("time_hub.tasks.commands", "finetune_main", "fine-tune an encoder on UD, NER or QA"),
    "evaluate": ("time_hub.tasks.commands", "evaluate_main", "evaluate a fine-tuned model -> results.json"),
    "compare": ("time_hub.tasks.commands", "compare_main", "compare results.json files (retention vs a reference)"),
    "bench": ("time_hub.bench.run", "main", "latency, throughput, memory and energy of models -> bench.json + plots"),
    "publish": ("time_hub.publish.hub", "main", "stage a run as a Hub repository (card, plots, JSON) and push it"),
    "space": ("time_hub.publish.space", "main", "the Gradio Space: `space serve` locally, `space publish` to the Hub"),
    "trim-vocab": ("time_hub.compress.vocab", "main", "trim a model's vocabulary to what a language's corpus uses"),
    "prune": ("time_hub.compress.prune", "main", "cut layers, heads, FFN, hidden dims by importance (student init)"),
    "export": ("time_hub.bench.export", "main", "export to ONNX (optionally int8), checked against PyTorch"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: time-hub COMMAND [--help] [args]", "", "commands:"]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, _, summary) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if argv[0] not in COMMANDS:
        print(f"time-hub: unknown command {argv[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module, function, _ = COMMANDS[argv[0]]
    return getattr(importlib.import_module(module), function)(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
