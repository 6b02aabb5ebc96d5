"""Recipes: flat YAML whose keys are fields of the command's dataclasses, plus `--key value` overrides.

Unknown keys and values of the wrong type are rejected with one error naming the file (or the command line) and the
key; so is anything the dataclasses' own `__post_init__` validation refuses. Floats such as `5e-5`, which PyYAML
reads as strings, are accepted for float fields. Booleans are YAML 1.2's (`true`/`false` only), so `eval_strategy: no`
stays the string "no" instead of PyYAML's 1.1 `False`.

A recipe may start from one shared file with `defaults: base.yaml` (a path relative to the recipe): its keys apply
unless the recipe sets them. One level only: a defaults file has no `defaults` of its own.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import re
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from time_hub.text_file import excerpt, read_text

CLI = "the command line"


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans: yes/no/on/off are strings."""


_BOOL = "tag:yaml.org,2002:bool"
_Loader.yaml_implicit_resolvers = {
    first: [r for r in resolvers if r[0] != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def yaml_value(text: str):
    return yaml.load(text, Loader=_Loader)


class InputError(ValueError):
    """Bad input (a file, line, key or credential), named in the message: `time-hub` prints it as one `error:` line
    and exits 2. Commands raise it (or ValueError / OSError from the readers, which name the file) and never exit
    themselves."""


class RecipeError(InputError):
    """A recipe or override that cannot become the requested dataclasses."""


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls) if f.init}


def coerce(value: Any, tp: Any, where: str) -> Any:
    """Check `value` against the annotation `tp`, converting only where it is lossless (int -> float, '5e-5')."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any or tp is object:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return coerce(value, option, where)
            except RecipeError as e:
                errors.append(str(e))
        raise RecipeError(errors[0] if len(errors) == 1 else f"{where}: {excerpt(value)} matches none of {tp}")
    if origin is typing.Literal:
        if value not in args:
            raise RecipeError(f"{where}: must be one of {list(args)}, got {excerpt(value)}")
        return value
    if origin in (list, tuple) or tp in (list, tuple):
        items = value if isinstance(value, list | tuple) else [value]
        inner = args[0] if args else Any
        return (list if origin is list or tp is list else tuple)(coerce(v, inner, where) for v in items)
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise RecipeError(f"{where}: expected a mapping, got {excerpt(value)}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise RecipeError(f"{where}: expected true or false, got {excerpt(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecipeError(f"{where}: expected an integer, got {excerpt(value)}")
        return value
    if tp is float:
        if isinstance(value, bool):
            raise RecipeError(f"{where}: expected a number, got {excerpt(value)}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise RecipeError(f"{where}: expected a number, got {excerpt(value)}") from None
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        values = [m.value for m in tp]
        if value not in values:
            raise RecipeError(f"{where}: must be one of {values}, got {excerpt(value)}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise RecipeError(f"{where}: expected a string, got {excerpt(value)}")
        return value
    return value


def load_yaml(path: str | Path) -> dict[str, Any]:
    try:
        data = yaml_value(read_text(path)) or {}
    except yaml.YAMLError as e:
        raise RecipeError(f"{path}: not valid YAML: {' '.join(str(e).split())}") from None
    except OSError as e:
        raise RecipeError(f"{path}: cannot read recipe: {e.strerror}") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe is a mapping of keys to values")
    return data


def load_recipe(path: str | Path) -> tuple[dict[str, Any], dict[str, str]]:
    """A recipe's keys with its `defaults` file applied, and where each key came from (for error messages)."""
    values = load_yaml(path)
    sources = dict.fromkeys(values, str(path))
    base = values.pop("defaults", None)
    sources.pop("defaults", None)
    if base is None:
        return values, sources
    if not isinstance(base, str):
        raise RecipeError(f"{path}: key 'defaults' must be the path of one YAML file, got {excerpt(base)}")
    base_path = Path(path).parent / base
    defaults = load_yaml(base_path)
    if "defaults" in defaults:
        raise RecipeError(f"{base_path}: key 'defaults': a defaults file cannot have defaults (one level only)")
    return {**defaults, **values}, {**dict.fromkeys(defaults, str(base_path)), **sources}


def parse_overrides(argv: list[str], flags: frozenset[str] = frozenset()) -> dict[str, Any]:
    """`--key value` / `--key=value` pairs; values are read as YAML scalars (`true`, `3`, `[a, b]`). A key in `flags`
    (the boolean fields) may also stand alone: `--markdown` is `--markdown true`."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--") or arg == "--":
            raise RecipeError(f"{CLI}: expected --key value, got {excerpt(arg)}")
        key, eq, value = arg[2:].partition("=")
        if not eq:
            alone = i + 1 >= len(argv) or argv[i + 1].startswith("--")
            if alone and key not in flags:
                raise RecipeError(f"{CLI}: --{key} needs a value")
            value = "true" if alone else argv[i + 1]
            i += 0 if alone else 1
        if key in out:
            raise RecipeError(f"{CLI}: --{key} given twice (lists are written --{key} '[a, b]')")
        out[key] = yaml_value(value) if value != "" else ""
        i += 1
    return out


# Ranges of numeric keys whose dataclasses do not check them (TrainingArguments takes a negative learning rate and
# fails only in torch, after the models are loaded): key -> (lowest, highest, whether the bounds are allowed).
RANGES: dict[str, tuple[float | None, float | None, bool]] = {
    "learning_rate": (0, None, False),
    "head_learning_rate": (0, None, False),
    "adam_epsilon": (0, None, False),
    "weight_decay": (0, None, True),
    "max_grad_norm": (0, None, True),
    "adam_beta1": (0, 1, True),
    "adam_beta2": (0, 1, True),
    "num_train_epochs": (0, None, False),
    "warmup_steps": (0, None, True),
    "max_steps": (-1, None, True),
    "per_device_train_batch_size": (1, None, True),
    "per_device_eval_batch_size": (1, None, True),
    "gradient_accumulation_steps": (1, None, True),
    "logging_steps": (0, None, False),
    "save_steps": (0, None, False),
    "eval_steps": (0, None, False),
    "save_total_limit": (1, None, True),
    "seed": (0, None, True),
    "max_seq_length": (8, None, True),
    "max_length": (8, None, True),
    "early_stopping_patience": (1, None, True),
    "warmup_ratio": (0, 1, True),
    "label_smoothing_factor": (0, 1, True),
    "teacher_layer": (1, None, True),
    "student_layer": (1, None, True),
    "num_relation_heads": (1, None, True),
    "extra_relation_weight": (0, None, True),
    "hidden_loss_weight": (0, None, True),
    "validation_holdout_lines": (0, None, True),
    "max_validation_sequences": (1, None, True),
    "min_train_tokens": (0, None, True),
    "num_shards": (1, None, True),
    "shard_index": (0, None, True),
    "prune_importance_lines": (1, None, True),
    "batch_size": (1, None, True),
    "doc_stride": (0, None, True),
    "max_answer_length": (1, None, True),
    "n_best": (1, None, True),
    "committee": (1, None, True),
    "random_init_seed": (0, None, True),
}


def _gpu_visible() -> bool:
    import torch  # here: only a recipe with bf16/fp16 needs it

    return torch.cuda.is_available()


MODEL_KEYS = {"teacher_name_or_path", "student_name_or_path", "model"}  # checked by encoder.check_model_source


def check_range(key: str, value: Any, where: str) -> None:
    """One error naming the key and its range when a numeric `value` of a key in RANGES lies outside it."""
    if key not in RANGES or isinstance(value, bool) or not isinstance(value, int | float):
        return
    low, high, inclusive = RANGES[key]
    below = low is not None and (value < low if inclusive else value <= low)
    above = high is not None and (value > high if inclusive else value >= high)
    if below or above:
        sign = (">=", "<=") if inclusive else (">", "<")
        bounds = " and ".join(f"{s} {b}" for s, b in zip(sign, (low, high)) if b is not None)
        raise RecipeError(f"{where}: must be {bounds}, got {excerpt(value)}")


def build(
    dataclass_types: tuple[type, ...], values: dict[str, Any], sources: dict[str, str], check_models: bool = True
) -> tuple[Any, ...]:
    """Instantiate each dataclass with its keys from `values`; `sources[key]` names where the key came from.

    With `check_models`, model keys must name a model folder or a Hub id (off where a recipe may name the output of
    another recipe that has not run yet: `recipes validate`)."""
    fields = {cls: _field_types(cls) for cls in dataclass_types}
    known = {name for types_ in fields.values() for name in types_}
    for key in values:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise RecipeError(f"{sources[key]}: unknown key '{key}'{hint}")
    out = []
    for cls, types_ in fields.items():
        kwargs = {k: coerce(v, types_[k], f"{sources[k]}: key '{k}'") for k, v in values.items() if k in types_}
        for key, value in kwargs.items():
            check_range(key, value, f"{sources[key]}: key '{key}'")
            if check_models and key in MODEL_KEYS and isinstance(value, str):
                from time_hub.encoder import check_model_source  # here: recipes validate needs no torch otherwise

                try:
                    check_model_source(value)
                except ValueError as e:
                    raise RecipeError(f"{sources[key]}: key '{key}': {e}") from None
        gpu_key = next((k for k in ("bf16", "fp16") if kwargs.get(k) is True), None)
        if gpu_key and "use_cpu" in types_ and not kwargs.get("use_cpu") and not _gpu_visible():
            raise RecipeError(
                f"{sources[gpu_key]}: key '{gpu_key}': a GPU setting, and no GPU is visible here: use a CPU recipe "
                "(recipes/distill/cpu/<size>.yaml, or time-hub run recipes/run/cpu/<lang>.yaml) or add --use_cpu true"
            )
        missing = [f.name for f in dataclasses.fields(cls) if f.init and f.name not in kwargs and _required(f)]
        if missing:
            origin = sorted({sources[k] for k in kwargs} | {CLI})
            raise RecipeError(f"{' / '.join(origin)}: missing required key(s) {', '.join(map(repr, missing))}")
        try:
            out.append(cls(**kwargs))
        except (ValueError, TypeError) as e:
            origin = sorted({sources[k] for k in kwargs}) or [CLI]
            raise RecipeError(f"{' / '.join(origin)}: {cls.__name__}: {e}") from None
    return tuple(out)


def parse(
    dataclass_types: tuple[type, ...], argv: list[str], check_models: bool = True
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """`[--config FILE] [--key value ...]` -> (dataclasses, the merged key/value mapping that produced them)."""
    argv = list(argv)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if "--config" in argv:
        i = argv.index("--config")
        if i + 1 >= len(argv):
            raise RecipeError(f"{CLI}: --config needs a file")
        path = argv[i + 1]
        del argv[i : i + 2]
        values, sources = load_recipe(path)
    types_ = {k: tp for cls in dataclass_types for k, tp in _field_types(cls).items()}
    overrides = parse_overrides(argv, frozenset(k for k, tp in types_.items() if tp is bool))
    for key, value in overrides.items():
        head, dot, rest = key.partition(".")
        if dot and (types_.get(head) is dict or typing.get_origin(types_.get(head)) is dict):
            # `--distill.max_steps 200`: one key of a mapping-valued key (e.g. a stage's overrides in `time-hub run`)
            if not isinstance(values.get(head, {}), dict):
                raise RecipeError(f"{sources[head]}: key '{head}': expected a mapping, got {excerpt(values[head])}")
            values[head] = {**values.get(head, {}), rest: value}
            sources[head] = CLI
        else:
            values[key] = value
            sources[key] = CLI
    return build(dataclass_types, values, sources, check_models), values


def help_text(prog: str, description: str, dataclass_types: tuple[type, ...]) -> str:
    """`--help`: every key with its type, default and help, grouped by dataclass."""
    lines = [f"usage: {prog} [--config RECIPE.yaml] [--key value ...]", "", description, ""]
    for cls in dataclass_types:
        lines.append(f"{cls.__name__} keys:")
        for f in dataclasses.fields(cls):
            if not f.init:
                continue
            if _required(f):
                default = "required"
            elif f.default is not dataclasses.MISSING:
                default = f"default {f.default!r}"
            else:
                default = f"default {f.default_factory()!r}"
            help_ = " ".join(str(f.metadata.get("help", "")).split())
            lines.append(f"  --{f.name} ({default}) {help_}".rstrip())
        lines.append("")
    return "\n".join(lines)


def parse_command(
    prog: str,
    description: str,
    dataclass_types: tuple[type, ...],
    argv: list[str],
    positional: str | None = None,
    many: bool = False,
    empty_is_help: bool = True,
) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
    """Every command's argv: `--help` (or no arguments, with `empty_is_help`) prints the help and returns None (the
    command returns 0);
    leading values before the first `--key` fill key `positional` (all of them as a list with `many`, else one);
    then `parse`, whose RecipeError `time-hub` prints as one line (exit 2)."""
    if (empty_is_help and not argv) or "-h" in argv or "--help" in argv:
        print(help_text(prog, description, dataclass_types))
        return None
    argv, leading = list(argv), []
    while positional and argv and not argv[0].startswith("--") and (many or not leading):
        leading.append(argv.pop(0))
    if leading:
        argv = [f"--{positional}", "[" + ", ".join(leading) + "]" if many else leading[0], *argv]
    return parse(dataclass_types, argv)
