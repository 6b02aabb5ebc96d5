"""`EtaCallback`: one plain log line at every tenth of a training run (or each minute), with its rate and ETA.

Both trainers register it themselves. Unlike a progress bar it writes no control characters, so it reads the same in
a terminal and in a log file; `time-hub` turns tqdm's bars off when stderr is not a terminal (`time_hub.cli`).
"""

from __future__ import annotations

import logging
import time

from transformers import TrainerCallback

logger = logging.getLogger(__name__)


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return (
        f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"
    )


class EtaCallback(TrainerCallback):
    def __init__(self, every_seconds: float = 60.0):
        self.every_seconds = every_seconds
        self._start = self._last = 0.0
        self._first_step = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self._start = self._last = time.perf_counter()
        self._first_step = state.global_step  # a resumed run's rate counts only the steps it ran

    def on_step_end(self, args, state, control, **kwargs):
        if not state.is_world_process_zero or not state.max_steps:
            return
        now, step, total = time.perf_counter(), state.global_step, state.max_steps
        tenth = max(1, total // 10)
        if step % tenth and now - self._last < self.every_seconds and step != total:
            return
        self._last = now
        rate = (now - self._start) / max(1, step - self._first_step)
        logger.info(
            "%s: step %d/%d (%d%%), %.2f s/step, %s elapsed, about %s left",
            args.output_dir, step, total, 100 * step // total, rate, duration(now - self._start),
            duration(rate * (total - step)),
        )  # fmt: skip


def add_once(trainer, *callback_classes: type) -> None:
    """Give `trainer` a default instance of each callback class it does not have yet (a caller may pass its own,
    with other settings): how both trainers carry card data and progress lines themselves."""
    for cls in callback_classes:
        if not any(isinstance(callback, cls) for callback in trainer.callback_handler.callbacks):
            trainer.add_callback(cls())
