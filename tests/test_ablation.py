"""benchmarks/ablation.py: cells are mean ± sd over the saved seeds, with the difference to the compared row."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _results(folder: Path, las: list[float]) -> Path:
    folder.mkdir(parents=True)
    for seed, value in zip((42, 43, 44), las):
        metrics = {"UPOS": 90.0, "Lemmas": 80.0, "LAS": value}
        (folder / f"ud-seed{seed}.json").write_text(json.dumps({"metrics": metrics}))
    return folder


def test_rows_are_compared_by_label(tmp_path):
    base, other = _results(tmp_path / "base", [50.0, 52.0, 54.0]), _results(tmp_path / "other", [40.0, 40.0, 40.0])
    argv = [sys.executable, str(ROOT / "benchmarks" / "ablation.py"), "--out", str(tmp_path / "abl"),
            "--row", f"base={base}", "--row", f"no KD={other}@base"]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, check=True)
    assert (
        "| no KD | base | 3 | 90.00 ± 0.00 (+0.00) | 80.00 ± 0.00 (+0.00) | 40.00 ± 0.00 (-12.00) |" in result.stdout
    )
    assert "| base | - | 3 | 90.00 ± 0.00 | 80.00 ± 0.00 | 52.00 ± 2.00 |" in (tmp_path / "abl.md").read_text()
    bad = subprocess.run([*argv[:-1], f"no KD={other}@nothing"], capture_output=True, text=True)
    assert bad.returncode == 2 and "compared rows ['nothing']" in bad.stderr
