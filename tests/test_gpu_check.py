"""benchmarks/gpu_check.sh, the script a GPU session runs, passes its CPU dry run (tiny sizes), all files written."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_dry_run(tmp_path):
    out = tmp_path / "gpu"
    # The script calls `python` and `time-hub`: those of the environment running the tests (CI's venv is not on PATH).
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh", "--dry_run", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    step = json.loads((out / "distill_step.json").read_text())
    assert step["ours"]["loss"] == pytest.approx(step["naive"]["loss"], rel=1e-4)
    bench = json.loads((out / "bench" / "bench.json").read_text())
    assert [m["name"] for m in bench["models"]] == ["L2-H64-A2", "L1-H64-A2"]
    assert (out / "versions.json").is_file() and "gpu_check:" in (out / "wall_time.txt").read_text()
