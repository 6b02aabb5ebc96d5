"""EtaCallback: a plain progress line at every tenth of a run, with rate and ETA, from the main process only."""

import logging
from types import SimpleNamespace

from time_hub.progress import EtaCallback, duration


def _state(step, total=20, main=True):
    return SimpleNamespace(global_step=step, max_steps=total, is_world_process_zero=main)


def test_one_line_per_tenth_with_an_eta(caplog):
    callback, args = EtaCallback(every_seconds=1e9), SimpleNamespace(output_dir="runs/x")
    callback.on_train_begin(args, _state(0), None)
    with caplog.at_level(logging.INFO, logger="time_hub.progress"):
        for step in range(1, 21):
            callback.on_step_end(args, _state(step), None)
            callback.on_step_end(args, _state(step, main=False), None)  # other ranks say nothing
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 10 and lines[0].startswith("runs/x: step 2/20 (10%)") and "left" in lines[0]
    assert lines[-1].startswith("runs/x: step 20/20 (100%)") and lines[-1].endswith("about 0m00s left")
    assert not any("\r" in line or "\x1b" in line for line in lines)


def test_duration():
    assert duration(59.6) == "1m00s" and duration(3725) == "1h02m"
