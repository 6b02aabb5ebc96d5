"""benchmarks/protocol.py: the statistics and table of the comparison protocol, its data, and a real tiny run."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("protocol", ROOT / "benchmarks" / "protocol.py")
protocol = sys.modules["protocol"] = importlib.util.module_from_spec(spec)  # dataclasses look their module up
spec.loader.exec_module(protocol)


def test_mean_sd_and_retention_and_gain_over_random():
    scores = {
        "teacher": {"LAS": [70.0, 72.0, 74.0], "f1": [80.0, 80.0, 80.0]},
        "m": {"LAS": [63.0, 63.0, 66.0], "f1": [76.0, 78.0, 80.0]},
        "m/random-init": {"LAS": [40.0, 44.0, 42.0], "f1": [30.0, 30.0, 30.0]},
    }
    summary = protocol.summarize(scores, {"m": "m/random-init"})
    las = summary["m"]["LAS"]
    assert las["mean"] == pytest.approx(64.0) and las["sd"] == pytest.approx(1.7320508) and las["n"] == 3
    assert las["retention"] == pytest.approx(100 * 64 / 72)
    assert las["gain_over_random"] == pytest.approx(22.0) and las["random_sd"] == pytest.approx(2.0)
    assert summary["m"]["f1"]["gain_over_random"] == pytest.approx(48.0)
    assert summary["teacher"]["LAS"]["retention"] == pytest.approx(100.0)
    assert "gain_over_random" not in summary["teacher"]["LAS"]
    assert protocol.mean_sd([5.0]) == (5.0, 0.0)


def test_table_shows_every_cell():
    scores = {"teacher": {"UPOS": [90.0, 92.0]}, "s": {"UPOS": [81.0, 81.0]}, "s/random-init": {"UPOS": [70.0, 72.0]}}
    summary = protocol.summarize(scores, {"s": "s/random-init"})
    extras = {"teacher": {"parameters": 39.5e6, "latency_ms": 20.0, "speedup": 1.0}, "s": {"parameters": 20e6,
              "latency_ms": 5.0, "speedup": 4.0}}  # fmt: skip
    table = protocol.markdown_table(summary, extras).splitlines()
    assert table[0] == "| encoder | params | latency b1 | speed-up | UPOS |"
    assert table[2] == "| teacher | 39.5M | 20.00 ms | 1.00x | 91.00 ± 1.41 |"
    assert table[3] == "| s | 20.0M | 5.00 ms | 4.00x | 81.00 ± 0.00 (89.0%) [+10.00] |"
    assert table[4].startswith("| s/random-init | - | - | - | 71.00 ± 1.41 (78.0%)")


def test_data_per_language(tmp_path, shared):
    da = protocol.prepare_data("da", tmp_path)
    assert set(da) == {"ud", "ner"}
    train, held_out = da["ud"]
    assert train.read_text().count("# sent_id") + held_out.read_text().count("# sent_id") == 564
    assert da["ner"][0].read_text().count("# sent_id") == protocol.NER_TRAIN_SENTENCES
    hu = protocol.prepare_data("hu", tmp_path)
    assert set(hu) == {"ud"} and hu["ud"][0].name == "train.conllu"


def test_bad_encoder_is_one_line_and_exit_2(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "protocol.py"), "--lang", "da", "--out", str(tmp_path),
         "--encoder", "x=/nonexistent"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 2 and "--encoder x=/nonexistent: expected NAME=FOLDER" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_tiny_protocol_run_reuses_saved_results(tmp_path, tiny_bert_dir, monkeypatch):
    """Teacher + one encoder + its random-init copy, UD on Irish, 2 seeds, capped at one epoch."""
    monkeypatch.setitem(protocol.PROTOCOL, "ud", protocol.TaskProtocol(32, 1e-3, max_epochs=1, patience=1))
    out, work = tmp_path / "out", tmp_path / "work"
    argv = ["protocol.py", "--lang", "ga", "--tasks", "ud", "--seeds", "1", "2", "--teacher", str(tiny_bert_dir),
            "--encoder", f"tiny={tiny_bert_dir}", "--random_init", "tiny", "--out", str(out), "--work", str(work),
            "--latency_repeats", "3", "--threads", "1"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    protocol.main()
    report = json.loads((out / "summary.json").read_text())
    assert set(report["summary"]) == {"teacher", "tiny", "tiny/random-init"}
    assert report["summary"]["tiny"]["LAS"]["n"] == 2 and "gain_over_random" in report["summary"]["tiny"]["LAS"]
    assert report["encoders"]["teacher"]["speedup"] == 1.0 and (out / "frontier.png").stat().st_size > 0
    assert not (work / "tiny" / "ud-seed1").exists()  # fine-tuned weights are removed, the scores kept
    saved = (out / "tiny" / "ud-seed1.json").stat().st_mtime_ns
    protocol.main()  # a second run re-uses every saved result
    assert (out / "tiny" / "ud-seed1.json").stat().st_mtime_ns == saved
    (out / "tiny" / "ud-seed2.json").unlink()
    monkeypatch.setattr(sys, "argv", [*argv, "--table_only"])
    protocol.main()  # tabulates what is saved, fine-tunes nothing
    report = json.loads((out / "summary.json").read_text())
    assert report["summary"]["tiny"]["LAS"]["n"] == 1 and not (out / "tiny" / "ud-seed2.json").exists()


def test_shape_search_pareto_front():
    spec = importlib.util.spec_from_file_location("shape_search", ROOT / "benchmarks" / "shape_search.py")
    search = sys.modules["shape_search"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(search)
    rows = [
        {"shape": "a", "speedup": 2.0, "relation_loss_after": 1.0},
        {"shape": "b", "speedup": 4.0, "relation_loss_after": 1.5},
        {"shape": "c", "speedup": 3.0, "relation_loss_after": 1.6},  # slower and worse than b
        {"shape": "d", "speedup": 1.5, "relation_loss_after": 1.2},  # slower and worse than a
    ]
    assert search.pareto(rows) == {"a", "b"}
