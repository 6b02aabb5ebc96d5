"""The `time-hub` command: logging set once, dispatch to the module that owns each subcommand, one exit-code rule.

Every command's `main(argv)` parses through `time_hub.arguments.parse_command` and returns 0, or 1 where a check it
runs found problems (`recipes validate`). Bad input raises: `InputError` (recipes, keys, credentials) or the
ValueError / OSError of a reader, whose message names the file, line or key. Here that becomes one `error:` line on
stderr and exit code 2, never a traceback (`TIME_HUB_DEBUG=1` re-raises, for a bug report).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import warnings

logger = logging.getLogger(__name__)

# subcommand -> (module, function taking argv and returning an exit code, one-line summary)
COMMANDS = {
    "run": ("time_hub.pipeline", "main", "run a recipe end to end: distill, select, fine-tune, bench, card"),
    "release": ("time_hub.release", "main", "build the hub: every language x size of a release recipe, leaderboard"),
    "recipes": ("time_hub.recipe_matrix", "main", "the recipe matrix: list, validate, plan, new (add a language)"),
    "distill": ("time_hub.distill.command", "main", "distill a student from a frozen teacher (MiniLMv2)"),
    "select": ("time_hub.distill.select", "main", "score checkpoints on held-out text and keep the best"),
    "finetune": ("time_hub.tasks.commands", "finetune_main", "fine-tune an encoder on UD, NER or QA"),
    "evaluate": ("time_hub.tasks.commands", "evaluate_main", "evaluate a fine-tuned model -> results.json"),
    "compare": ("time_hub.tasks.commands", "compare_main", "compare results.json files (retention vs a reference)"),
    "bench": ("time_hub.bench.command", "main", "latency, throughput, memory, energy of models -> bench.json + plots"),
    "publish": ("time_hub.publish.hub", "main", "stage a run as a Hub repository (card, plots, JSON) and push it"),
    "space": ("time_hub.publish.space", "main", "the Gradio Space: `space serve` locally, `space publish` to the Hub"),
    "trim-vocab": ("time_hub.compress.vocab", "main", "trim a model's vocabulary to what a language's corpus uses"),
    "prune": ("time_hub.compress.prune", "main", "cut layers, heads, FFN, hidden dims by importance (student init)"),
    "export": ("time_hub.bench.export", "main", "export to ONNX (optionally int8), checked against PyTorch"),
    "annotate": ("time_hub.annotate.command", "main", "raw text -> CoNLL-U / JSONL (sentences, tags, trees, NER)"),
}
# Libraries whose INFO lines are noise at this level (one per ONNX node, per HTTP request, per emissions tick).
QUIET_LOGGERS = ("onnx_ir", "onnxruntime", "onnxscript", "httpx", "httpx2", "urllib3", "filelock")


def process_rank() -> int:
    """This process's rank under torchrun / accelerate launch (0 when not distributed)."""
    return int(os.environ.get("RANK") or os.environ.get("LOCAL_RANK") or 0)


def setup_logging() -> None:
    """Once per process: INFO from the main process, warnings only from the other ranks (each prefixed with its
    rank); library noise kept to warnings."""
    rank, world = process_rank(), int(os.environ.get("WORLD_SIZE") or 1)
    prefix = f"[rank {rank}] " if world > 1 else ""
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format=f"{prefix}%(levelname)s %(name)s: %(message)s",
        force=True,
    )
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("codecarbon").setLevel(logging.ERROR)  # its warnings describe its own configuration
    # Said once per DataLoader on machines without a GPU; it changes nothing.
    warnings.filterwarnings("ignore", message=".*pin_memory.*no accelerator is found.*")
    if not sys.stderr.isatty():  # progress bars in a log file are control characters; EtaCallback logs progress
        os.environ.setdefault("TQDM_DISABLE", "1")


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: time-hub COMMAND [--help] [args]", "", "commands:"]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, _, summary) in COMMANDS.items()]
    return "\n".join(lines)


def error_line(error: BaseException) -> str:
    """A bad-input error's message as one line."""
    return " ".join((str(error) or type(error).__name__).split())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if argv[0] not in COMMANDS:
        print(f"time-hub: unknown command {argv[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    setup_logging()
    module, function, _ = COMMANDS[argv[0]]
    try:
        return getattr(importlib.import_module(module), function)(argv[1:])
    except (ValueError, OSError) as error:  # bad input; the message names the file, line or key
        if os.environ.get("TIME_HUB_DEBUG"):
            raise
        logger.debug("time-hub %s failed", argv[0], exc_info=True)
        print(f"error: {error_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
