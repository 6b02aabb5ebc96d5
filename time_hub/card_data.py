"""`CardDataCallback`: what a model card needs that only the training run itself can see, saved as card_data.json.

`DistillationTrainer` and `TaskTrainer` register it themselves (`progress.add_once`), so every run of either,
from the CLI or from Python, records its data; the card (`time_hub.publish.card`) only reads the file.

Recorded: start/end time and wall time, hardware and software versions, steps, tokens seen (the Trainer's
`num_input_tokens_seen` when counted, else steps x batch x sequence length, labelled as an upper bound), the
training arguments that differ from the defaults, the training curve (loss, eval loss, learning rate per logged
step), and, when codecarbon is installed, its offline estimate of the run's energy and CO2 (labelled as an estimate:
it models power from the hardware's TDP when no counter is readable). The file is rewritten at every save, so a crashed
run still has the data of its last checkpoint (without the emissions, which are known at the end).
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import time
from importlib import metadata

from transformers import TrainerCallback, TrainingArguments

from time_hub.atomic import write_json
from time_hub.provenance import machine_info, software_versions
from time_hub.run_dir import RunDir

logger = logging.getLogger(__name__)
CURVE_KEYS = ("loss", "eval_loss", "learning_rate", "grad_norm")
# Arguments that say nothing about how the model was trained (paths, logging, evaluation and saving bookkeeping).
BOOKKEEPING = {
    "output_dir", "logging_dir", "run_name", "report_to", "disable_tqdm", "logging_steps", "logging_strategy",
    "logging_first_step", "eval_steps", "eval_strategy", "save_steps", "save_strategy", "save_total_limit",
    "per_device_eval_batch_size", "dataloader_num_workers", "use_cpu", "max_validation_sequences", "train_files",
    "teacher_name_or_path", "overwrite_output_dir",
}  # fmt: skip


def non_default_arguments(args: TrainingArguments) -> dict:
    """Arguments (of any TrainingArguments subclass) that differ from their field defaults, as JSON-ready values.

    `__post_init__` normalizes some defaults (None -> False, "" -> [], None -> a config object), so empty values are
    compared as equal and config objects that replaced a None default are skipped. (Building a default instance to
    compare with is not an option: during training it would reset accelerate's state.)
    """
    defaults = {
        f.name: f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        for f in dataclasses.fields(args)
        if f.init
    }
    changed = {}
    for key, value in args.to_dict().items():
        if key not in defaults or key in BOOKKEEPING or "token" in key:
            continue
        default = defaults[key]
        default = default.value if hasattr(default, "value") else default
        if value == default or (not value and not default) or (default is None and isinstance(value, dict)):
            continue
        changed[key] = value
    return changed


def _utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


COUNTRY_ENV = "TIME_HUB_COUNTRY"  # ISO 3166-1 alpha-3 code of the machine's electricity grid (codecarbon's CO2)


class CardDataCallback(TrainerCallback):
    """Energy is estimated wherever codecarbon runs; CO2 only where the grid's country is known (`country_iso_code`
    or $TIME_HUB_COUNTRY): a guessed country would put a made-up number on the card."""

    def __init__(self, track_emissions: bool = True, country_iso_code: str | None = None):
        self.track_emissions = track_emissions
        self.country_iso_code = country_iso_code or os.environ.get(COUNTRY_ENV) or None
        self._tracker = None
        self._start = None
        self.data: dict = {}

    def on_train_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()
        self.data = {
            "started": _utc_now(),
            "hardware": machine_info(),
            "software": software_versions(),
            "world_size": args.world_size,
            "hyperparameters": non_default_arguments(args),
        }
        if self.track_emissions and state.is_world_process_zero:
            self._tracker = self._start_tracker()

    def _start_tracker(self):
        try:
            from codecarbon import OfflineEmissionsTracker
        except ImportError:
            logger.info("codecarbon not installed: the card will say that no CO2 estimate exists")
            return None
        # The energy does not depend on the country given here; the CO2 is kept only when the country is known.
        country = self.country_iso_code or "USA"
        tracker = OfflineEmissionsTracker(
            country_iso_code=country, save_to_file=False, log_level="error", measure_power_secs=15
        )
        tracker.start()
        return tracker

    def _stop_tracker(self) -> dict | None:
        if self._tracker is None:
            return None
        self._tracker.stop()
        final = self._tracker.final_emissions_data
        self._tracker = None
        source = f"codecarbon {metadata.version('codecarbon')} offline tracker"
        return {
            "co2_eq_grams": 1000.0 * float(final.emissions) if self.country_iso_code else None,
            "energy_kwh": float(final.energy_consumed),
            "source": f"{source}, grid of {self.country_iso_code}" if self.country_iso_code else source,
            "kind": "estimate",
        }

    def _update(self, args, state) -> None:
        if not state.is_world_process_zero or not self.data:
            return
        tokens = state.num_input_tokens_seen or None
        batch = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
        self.data.update(
            seconds=time.perf_counter() - self._start,
            global_step=state.global_step,
            epoch=state.epoch,
            train_batch_size=batch,
            tokens_seen=tokens,
            tokens_seen_kind="counted by the Trainer, padding excluded" if tokens else "not counted",
            curve=[
                {"step": entry["step"], **{k: entry[k] for k in CURVE_KEYS if k in entry}}
                for entry in state.log_history
                if any(k in entry for k in CURVE_KEYS)
            ],
        )
        write_json(RunDir(args.output_dir).card_data, self.data)

    def on_save(self, args, state, control, **kwargs):
        self._update(args, state)

    def on_train_end(self, args, state, control, **kwargs):
        self.data["finished"] = _utc_now()
        self.data["emissions"] = self._stop_tracker()
        self._update(args, state)
