"""One exit-code rule for every command: bad input -> one `error:` line naming file or key, exit 2, no traceback."""

import pytest

from time_hub.cli import COMMANDS, main


def bad_inputs(tmp_path, tiny_bert_dir) -> dict[str, tuple[list[str], str]]:
    """command -> (argv with a bad input, what its error line must name)."""
    missing = tmp_path / "missing"
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("Hej med dig.\n")
    out = str(tmp_path / "out")
    return {
        "run": ([f"{missing}.yaml"], "missing.yaml: cannot read recipe"),
        "release": ([f"{missing}.yaml"], "missing.yaml: cannot read recipe"),
        "recipes": (["plan", "recipes/distill/da/m.yaml", "--gpu", "TPU"], "gpu must be one of"),
        "distill": (["--config", "recipes/distill/cpu/s.yaml", "--learning_rate", "fast"], "key 'learning_rate'"),
        "select": ([str(missing)], "missing"),
        "finetune": (
            ["--task", "ner", "--model", tiny_bert_dir, "--train", f"{missing}.iob2", "--output_dir", out],
            "missing.iob2",
        ),  # fmt: skip
        "evaluate": (
            ["--task", "ud", "--model", tiny_bert_dir, "--data", f"{missing}.conllu"],
            "not a fine-tuned UD model",
        ),
        "compare": ([str(broken)], "broken.json: not valid JSON"),
        "bench": ([tiny_bert_dir, "--reference", "m"], "reference 'm' is not one of the models"),
        "publish": ([str(tmp_path), "--lang", "da"], "no run_config.json"),
        "space": (["publish", "--repo_id", "time/x", "--models_file", f"{missing}.json", "--dry_run"], "missing.json"),
        "trim-vocab": (
            [tiny_bert_dir, "--corpus", f"{missing}.txt", "--output_dir", out, "--size", "500"],
            "missing.txt",
        ),  # fmt: skip
        "prune": (
            [tiny_bert_dir, "--corpus", str(corpus), "--output_dir", out, "--layers", "every-0"],
            "--layers every-0",
        ),  # fmt: skip
        "export": ([str(missing), "--output_dir", out], "missing"),
        "annotate": ([f"{missing}.txt", "--model", tiny_bert_dir, "--output", out], "missing.txt: no such file"),
    }


def test_every_command_is_covered(tmp_path):
    assert set(bad_inputs(tmp_path, "m")) == set(COMMANDS)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_bad_input_is_one_line_and_exit_2(command, tmp_path, tiny_bert_dir, capsys, monkeypatch):
    monkeypatch.delenv("TIME_HUB_DEBUG", raising=False)
    argv, named = bad_inputs(tmp_path, str(tiny_bert_dir))[command]
    assert main([command, *argv]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and named in errors[0], err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_help_exits_0_and_unknown_commands_2(capsys):
    assert main(["--help"]) == 0 and "commands:" in capsys.readouterr().out
    assert main(["distil"]) == 2 and "unknown command 'distil'" in capsys.readouterr().err
    for command in COMMANDS:
        assert main([command, "--help"]) == 0, command
        assert "usage: time-hub" in capsys.readouterr().out


def test_debug_re_raises(monkeypatch, tmp_path):
    monkeypatch.setenv("TIME_HUB_DEBUG", "1")
    with pytest.raises(ValueError, match="not valid JSON"):
        (tmp_path / "broken.json").write_text("{")
        main(["compare", str(tmp_path / "broken.json")])
