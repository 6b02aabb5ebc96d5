"""time_hub.bench: statistics and ratios on hand-made numbers, energy counters on a fake powercap tree, and real
runs of `time-hub bench` / `time-hub export` on tiny models, the shared teacher and the Danish NER dev set."""

import json

import pytest
import torch

from time_hub.bench import energy, report
from time_hub.bench.command import main as bench_main
from time_hub.bench.export import ExportArguments, export
from time_hub.bench.measure import (
    TimingSettings,
    interleaved_ratios,
    interleaved_seconds,
    latency_summary,
    make_batches,
    measure,
    speedups,
)
from time_hub.bench.models import describe, load
from time_hub.cli import main as cli_main


def test_latency_summary_known_values():
    summary = latency_summary([0.001 * i for i in range(1, 101)])  # 1..100 ms
    assert summary["median"] == pytest.approx(50.5)
    assert summary["mean"] == pytest.approx(50.5)
    assert summary["p2_5"] == pytest.approx(3.475)
    assert summary["p97_5"] == pytest.approx(97.525)


def test_pareto_front_drops_dominated_points():
    points = [(1.0, 90.0), (2.0, 80.0), (1.5, 70.0), (4.0, 60.0), (3.0, 50.0)]
    assert report.pareto_front(points) == [0, 1, 3]


def _entry(name, latency, tokens, joules=None):
    row = {"batch_size": 1, "latency_ms": {"median": latency}, "tokens_per_s": tokens, "joules_per_token": joules}
    return {"name": name, "results": [row]}


def test_speedups_are_ratios_to_the_reference():
    entries = [_entry("big", 100.0, 50.0, 2.0), _entry("small", 4.0, 1000.0, 0.1)]
    ratios = speedups(entries, "big")
    assert ratios["big"][1] == {"latency": 1.0, "throughput": 1.0, "energy": 1.0}
    assert ratios["small"][1] == pytest.approx({"latency": 25.0, "throughput": 20.0, "energy": 20.0})
    with pytest.raises(ValueError, match="not one of the timed models"):
        speedups(entries, "missing")


def test_interleaved_ratios_are_per_batch_medians_and_total_times():
    seconds = [{1: [2.0, 4.0, 6.0]}, {1: [1.0, 1.0, 3.0]}]  # per-batch ratios 2, 4, 2; totals 12 and 5
    ratios = interleaved_ratios(seconds, 0)
    assert ratios == [{1: {"latency": 1.0, "throughput": 1.0}}, {1: {"latency": 2.0, "throughput": 2.4}}]
    entries = [_entry("big", 100.0, 50.0, 2.0), _entry("small", 4.0, 1000.0, 0.1)]
    small = speedups(entries, "big", ratios)["small"][1]  # not 100 / 4 and 1000 / 50: the machine drifted
    assert small == pytest.approx({"latency": 2.0, "throughput": 2.4, "energy": 20.0})


def test_interleaved_seconds_time_every_model_on_every_batch(tiny_bert_dir, da_lines):
    settings = TimingSettings(warmup=1, repeats=3)
    seconds = interleaved_seconds(
        [str(tiny_bert_dir), "L1-H32-A2"], str(tiny_bert_dir), da_lines[:40], [2, 1], settings
    )
    assert [sorted(rows) for rows in seconds] == [[1, 2], [1, 2]]
    assert all(len(times) == 3 and min(times) > 0 for rows in seconds for times in rows.values())


def _fake_rapl(root, values, span=1000):
    domain = root / "intel-rapl:0"
    domain.mkdir(parents=True, exist_ok=True)
    (root / "intel-rapl:0:0").mkdir(exist_ok=True)  # a sub-domain: must not be added to its package
    (domain / "name").write_text("package-0\n")
    (domain / "max_energy_range_uj").write_text(f"{span}\n")
    (domain / "energy_uj").write_text(f"{values}\n")
    return domain


def test_rapl_counter_sums_packages_and_handles_wraparound(tmp_path):
    domain = _fake_rapl(tmp_path, 900)
    counter = energy.RaplCounter(tmp_path)
    assert counter.read() == 0.0
    (domain / "energy_uj").write_text("950\n")
    assert counter.read() == pytest.approx(50e-6)
    (domain / "energy_uj").write_text("30\n")  # wrapped past 1000 uJ
    assert counter.read() == pytest.approx(130e-6)
    assert counter.name == "RAPL (package-0)"


def test_no_counter_means_none_not_a_number(tmp_path, monkeypatch):
    monkeypatch.setattr(energy, "POWERCAP", tmp_path / "absent")
    assert energy.open_counter("cpu") is None


def test_model_specs_resolve_like_the_docs_say(tiny_bert_dir):
    assert describe("xlm-roberta-large") == "architecture (random weights)"
    assert describe("xs").startswith("student shape")
    assert describe("L2-H64-A2").startswith("student shape")
    assert describe("runs/x/model.onnx") == "onnx"
    assert describe(str(tiny_bert_dir)) == "pretrained"


def test_shape_students_keep_the_full_xlmr_vocabulary(shared):
    loaded = load("L1-H32-A2", str(shared / "tokenizers" / "xlm-roberta"), "cpu", "fp32")
    assert loaded.model.config.vocab_size == 250002
    assert loaded.max_length == 512  # 514 positions, offset by the padding index
    assert loaded.num_parameters > 250002 * 32


def test_measure_times_the_same_real_batches(tiny_bert_dir, da_lines):
    settings = TimingSettings(warmup=1, repeats=3)
    entry = measure(str(tiny_bert_dir), "unused", da_lines[:50], [2, 1], settings)
    assert [r["batch_size"] for r in entry["results"]] == [1, 2]
    for row in entry["results"]:
        assert row["repeats"] == 3
        lat = row["latency_ms"]
        assert 0 < lat["p2_5"] <= lat["median"] <= lat["p97_5"]
        assert row["sentences_per_s"] > 0 and row["tokens_per_s"] > row["sentences_per_s"]
        assert row["joules_per_token"] is None or row["joules_per_token"] > 0
    tok = load(str(tiny_bert_dir), "unused", "cpu", "fp32").tokenizer
    first = make_batches(da_lines[:50], tok, 2, 2, 512)
    again = make_batches(da_lines[:50], tok, 2, 2, 512)
    assert all(torch.equal(a["input_ids"], b["input_ids"]) for a, b in zip(first, again))
    padded = make_batches(da_lines[:64], tok, 8, 8, 512)
    bucketed = make_batches(da_lines[:64], tok, 8, 8, 512, sort_by_length=True)
    assert sum(int(b["attention_mask"].sum()) for b in bucketed) == sum(int(b["attention_mask"].sum()) for b in padded)
    assert sum(b["input_ids"].numel() for b in bucketed) < sum(b["input_ids"].numel() for b in padded)


def test_bench_command_writes_json_table_and_plots(tiny_bert_dir, shared, tmp_path):
    ner = tmp_path / "ner-results.json"
    ner.write_text(
        json.dumps(
            {"schema": 1, "task": "ner", "dataset": "d", "split": "dev", "metrics": {"f1": 70.0}, "model": "m"}
            | {"num_parameters": 1, "seconds": 1.0, "examples": 1}
        )
    )
    out = tmp_path / "bench"
    argv = [str(tiny_bert_dir), "L1-H32-A2", "--batch_sizes", "[1,4]", "--repeats", "2", "--warmup", "1"]
    argv += ["--output_dir", str(out), "--tokenizer", str(shared / "tokenizers" / "xlm-roberta")]
    argv += ["--sentences_file", str(shared / "data" / "text" / "hu.txt"), "--num_sentences", "40"]
    argv += ["--quality", f"[{tiny_bert_dir}={ner}, L1-H32-A2={ner}]", "--reference", "L1-H32-A2"]
    assert bench_main(argv) == 0
    bench = report.load_bench(out / "bench.json")
    assert [m["name"] for m in bench["models"]] == [str(tiny_bert_dir), "L1-H32-A2"]
    assert bench["settings"]["reference"] == "L1-H32-A2" and bench["settings"]["sentences"] == 40
    assert bench["ratios"]["L1-H32-A2"]["4"]["throughput"] == 1.0
    assert bench["software"]["torch"] == torch.__version__
    table = (out / "bench.md").read_text()
    assert "throughput vs L1-H32-A2" in table and table.count("\n| ") == 4
    for png in ("throughput.png", "pareto-throughput.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_rejects_a_reference_that_is_not_timed(capsys):
    assert cli_main(["bench", "xs", "--reference", "m"]) == 2
    assert "reference 'm' is not one of the models" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_ner_dir(tmp_path_factory, tiny_bert_dir):
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    labels = ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER", "B-MISC", "I-MISC"]
    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_pretrained(
        tiny_bert_dir, id2label=dict(enumerate(labels)), label2id={x: i for i, x in enumerate(labels)}
    )
    path = tmp_path_factory.mktemp("tiny-ner")
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(path)
    return path


def test_export_ner_model_matches_pytorch_on_the_danish_dev_set(tiny_ner_dir, shared, tmp_path):
    out = tmp_path / "onnx"
    args = ExportArguments(
        model=str(tiny_ner_dir),
        output_dir=str(out),
        quantize=True,
        sentences_file=str(shared / "data" / "text" / "da.txt"),
        check_sentences=32,
        eval_file=str(shared / "data" / "ner" / "da" / "dev.iob2"),
    )
    result = export(args)
    fp32, int8 = result["variants"]["fp32"], result["variants"]["int8"]
    assert fp32["max_abs_diff_vs_pytorch"] < 1e-4
    assert 0 < int8["max_abs_diff_vs_pytorch"] < 1.0
    assert int8["megabytes"] < fp32["megabytes"] / 2  # weights went from 4 bytes to 1
    for key in ("precision", "recall", "f1", "accuracy"):
        assert fp32["ner_dev"][key] == pytest.approx(result["pytorch_ner_dev"][key])
    assert abs(int8["ner_dev"]["accuracy"] - result["pytorch_ner_dev"]["accuracy"]) < 5.0
    assert json.loads((out / "export.json").read_text())["outputs"] == ["logits"]
    # the exported folder is a bench model like any other
    sentences = ["Hej med dig.", "Et par ord mere her."]
    entry = measure(str(out / "model-int8.onnx"), "unused", sentences, [2], TimingSettings(warmup=1, repeats=1))
    assert entry["kind"] == "onnx" and entry["results"][0]["tokens_per_s"] > 0


def test_export_real_teacher_encoder(teacher_dir, shared, tmp_path):
    args = ExportArguments(
        model=str(teacher_dir),
        output_dir=str(tmp_path / "onnx"),
        sentences_file=str(shared / "data" / "text" / "ga.txt"),
        check_sentences=16,
    )
    result = export(args)
    assert result["outputs"] == ["last_hidden_state"]
    assert result["variants"]["fp32"]["max_abs_diff_vs_pytorch"] < 1e-4
