"""benchmarks/gpu_check.sh, the script a GPU session runs, passes its CPU dry run (tiny sizes), all files written."""

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_dry_run(tmp_path):
    out = tmp_path / "gpu"
    proc = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh", "--dry_run", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    step = json.loads((out / "distill_step.json").read_text())
    assert step["ours"]["loss"] == pytest.approx(step["naive"]["loss"], rel=1e-4)
    bench = json.loads((out / "bench" / "bench.json").read_text())
    assert [m["name"] for m in bench["models"]] == ["xs", "L2-H64-A2"]
    assert (out / "versions.json").is_file() and "gpu_check:" in (out / "wall_time.txt").read_text()
