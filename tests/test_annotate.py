"""Raw text -> CoNLL-U: the learned segmenter's pieces on hand-made data, then `time-hub annotate` end to end with a
tiny encoder fine-tuned on a slice of Danish-DDT (valid trees, every character kept, ordered output with workers,
resume after a kill, bad input refused), and the same pipeline as a teacher making silver training data."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from transformers import TrainingArguments

from time_hub.annotate.command import PROGRESS_SUFFIX
from time_hub.annotate.pipeline import Pipeline, sentence_from_tokens
from time_hub.cli import main
from time_hub.tasks import segment, silver
from time_hub.tasks.conllu import parse_conllu, read_conllu, replace_columns, write_conllu
from time_hub.tasks.ud import finetune

ROOT = Path(__file__).resolve().parents[1]
MWT_SENTENCE = """# text = Vamos del cine.
1	Vamos	ir	VERB	_	_	0	root	_	_
2-3	del	_	_	_	_	_	_	_	_
2	de	de	ADP	_	_	4	case	_	_
3	el	el	DET	_	_	4	det	_	_
4	cine	cine	NOUN	_	_	1	obl	_	SpaceAfter=No
5	.	.	PUNCT	_	_	1	punct	_	_

"""


def test_atoms_only_over_segment():
    text = "Hun bor i Aarhus, 23h30 (km²)."
    spans = segment.atoms(text)
    assert [text[a:b] for a, b in spans] == [
        "Hun",
        "bor",
        "i",
        "Aarhus",
        ",",
        "23",
        "h",
        "30",
        "(",
        "km²",  # superscripts are word characters: es-AnCora's `km` `²` is one of the rare lost boundaries
        ")",
        ".",
    ]


def test_treebank_text_labels_tokens_sentences_and_multiword_tokens():
    sentences = parse_conllu(MWT_SENTENCE * 2)
    text, ends, lexicon, misplaced = segment.treebank_text(sentences)
    assert text == "Vamos del cine. Vamos del cine." and misplaced == 0
    assert [ends[i] for i in sorted(ends)] == ["T", "M", "T", "S", "T", "M", "T", "S"]
    assert lexicon == {"del": {"de el": 2}}


def test_windows_cover_every_atom_once_in_a_core(tokenizer):
    text = " ".join(f"Sætning nummer {i} er her." for i in range(200))
    spans = segment.atoms(text)
    encode = segment.AtomEncoder(tokenizer)
    for max_positions, shift in ((512, False), (512, True), (64, False)):
        sizes = segment.window_sizes(max_positions)
        covered = []
        for window in segment.windows(text, spans, encode, sizes, shift):
            first, last = window["core"]
            covered += list(range(first, last))
            assert len(window["input_ids"]) <= min(max_positions, segment.CORE_PIECES + 2 * segment.CONTEXT_PIECES + 2)
            assert window["atoms"][0] <= first and last <= window["atoms"][-1] + 1
        assert covered == list(range(len(spans)))
    # a full stop glued to its word is spelled as inside running text, unlike a free-standing one
    assert encode(".", True) != encode(".", False)


def test_boundary_scores():
    gold, predicted = ["J", "T", "S", "M", "S"], ["J", "T", "T", "M", "S"]
    scores = segment.boundary_scores(gold, predicted)
    assert scores["tokens"] == 100.0 and scores["sentences"] == pytest.approx(100 * 2 / 3)
    assert scores["multiword"] == 100.0 and scores["boundaries"] == pytest.approx((100 + 200 / 3) / 2)


def test_sentence_from_tokens_is_valid_conllu():
    text = "Vamos del cine."
    tokens = [
        segment.Token("Vamos", 0, 5, ["Vamos"]),
        segment.Token("del", 6, 9, ["de", "el"]),
        segment.Token("cine", 10, 14, ["cine"], space_after=False),
        segment.Token(".", 14, 15, ["."]),
    ]
    sentence = sentence_from_tokens(text, tokens, "d-1", "d")
    tree = replace_columns(sentence, head=[0, 4, 4, 1, 1], deprel=["root", "case", "det", "obl", "punct"])
    again = parse_conllu(tree.to_text())
    assert again[0].text == text and [w.form for w in again[0].words] == ["Vamos", "de", "el", "cine", "."]
    assert "2-3\tdel\t" in sentence.to_text() and "SpaceAfter=No" in again[0].words[3].misc


@pytest.fixture(scope="module")
def ud_model(tiny_bert_dir, shared, tmp_path_factory):
    """A tiny UD model with a segmenter, fine-tuned on 64 Danish sentences (a few steps: the tests check the plumbing
    and the output's validity, not its accuracy)."""
    root = tmp_path_factory.mktemp("annotate")
    sentences = read_conllu(shared / "data" / "ud" / "da" / "dev.conllu")
    write_conllu(root / "train.conllu", sentences[:64])
    write_conllu(root / "dev.conllu", sentences[64:80])
    args = TrainingArguments(
        output_dir=str(root / "ckpt"), max_steps=8, per_device_train_batch_size=16, learning_rate=2e-3,
        report_to="none", use_cpu=True, seed=3, disable_tqdm=True,
    )  # fmt: skip
    results = finetune(
        str(tiny_bert_dir), str(root / "train.conllu"), str(root / "dev.conllu"), str(root / "ud"), args,
        max_length=64, segmenter_steps=8,
    )  # fmt: skip
    assert set(results.extra["segmenter"]["dev"]) == {"tokens", "sentences", "multiword", "boundaries"}
    assert (root / "ud" / segment.FOLDER / segment.MWT_FILE).is_file()
    return root / "ud"


@pytest.fixture(scope="module")
def raw_text(shared, tmp_path_factory) -> Path:
    """40 documents of real Danish (one per line) from the held-out text."""
    lines = [line for line in (shared / "data" / "text" / "da.txt").read_text(encoding="utf-8").splitlines() if line]
    path = tmp_path_factory.mktemp("raw") / "da.txt"
    path.write_text("\n".join(line[:400] for line in lines[:40]) + "\n", encoding="utf-8")
    return path


def test_pipeline_keeps_every_character_and_writes_trees(ud_model, raw_text):
    texts = raw_text.read_text(encoding="utf-8").splitlines()
    documents = Pipeline.from_pretrained(ud_model, ner=None)(texts, [f"d{i}" for i in range(len(texts))])
    assert len(documents) == len(texts)
    for i, (text, sentences) in enumerate(zip(texts, documents)):
        assert sentences and sentences[0].comments[0] == f"# newdoc id = d{i}"
        again = parse_conllu("".join(s.to_text() for s in sentences))  # every sentence a single-root tree
        forms = "".join(w.form for s in again for w in s.words)  # Danish-DDT has no multiword tokens
        assert forms == "".join(text.split())


def test_a_ner_model_adds_entities_to_misc(ud_model, tiny_bert_dir, raw_text, tmp_path):
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    tagger = AutoModelForTokenClassification.from_pretrained(
        tiny_bert_dir, id2label=dict(enumerate(labels)), label2id={x: i for i, x in enumerate(labels)}
    )  # an untrained head: any tag, but one per word
    tagger.save_pretrained(tmp_path / "ner")
    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(tmp_path / "ner")
    texts = raw_text.read_text(encoding="utf-8").splitlines()[:5]
    for doc in Pipeline.from_pretrained(ud_model, ner=tmp_path / "ner")(texts):
        for word in (w for sentence in doc for w in sentence.words):
            tags = [item[4:] for item in word.misc.split("|") if item.startswith("NER=")]
            assert len(tags) == 1 and tags[0] in labels, word.misc


def test_onnx_encoders_give_the_pytorch_annotation(ud_model, raw_text, tmp_path):
    """`time-hub export` of the UD model (its layer mix) and of its segmenter, then the pipeline on onnxruntime."""
    from time_hub.bench.export import ExportArguments, export

    texts = raw_text.read_text(encoding="utf-8").splitlines()[:10]
    copy = tmp_path / "ud"
    shutil.copytree(ud_model, copy)
    for folder in (copy, copy / segment.FOLDER):
        report = export(ExportArguments(model=str(folder), output_dir=str(folder / "onnx"), quantize=True,
                                        sentences_file=str(raw_text), check_sentences=8))  # fmt: skip
        assert report["variants"]["fp32"]["max_abs_diff_vs_pytorch"] < 1e-4
    reference = [[s.to_text() for s in doc] for doc in Pipeline.from_pretrained(copy)(texts)]
    assert [[s.to_text() for s in doc] for doc in Pipeline.from_pretrained(copy, onnx="fp32")(texts)] == reference
    for doc in Pipeline.from_pretrained(copy, onnx="int8")(texts):
        parse_conllu("".join(s.to_text() for s in doc))  # valid trees (the int8 labels may differ)
    with pytest.raises(FileNotFoundError, match="time-hub export"):
        Pipeline.from_pretrained(ud_model, onnx="int8")


def run_annotate(*argv: str) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "time_hub.cli", "annotate", *argv], capture_output=True, text=True, env=env, timeout=600
    )
    return proc.returncode, proc.stderr


@pytest.mark.slow
def test_annotate_workers_keep_order_and_resume_after_a_kill(ud_model, raw_text, tmp_path, capsys):
    one, two = tmp_path / "one.conllu", tmp_path / "two.conllu"
    assert (
        main(["annotate", str(raw_text), "--model", str(ud_model), "--output", str(one), "--chunk_chars", "500"]) == 0
    )
    rc, err = run_annotate(
        str(raw_text), "--model", str(ud_model), "--output", str(two), "--workers", "2", "--chunk_chars", "500"
    )
    assert rc == 0, err
    assert two.read_text(encoding="utf-8") == one.read_text(encoding="utf-8")
    assert not Path(str(two) + PROGRESS_SUFFIX).exists()

    # killed after its first chunks, then run again: the same file as an uninterrupted run
    killed = tmp_path / "killed.conllu"
    progress = Path(str(killed) + PROGRESS_SUFFIX)
    argv = [str(raw_text), "--model", str(ud_model), "--output", str(killed), "--chunk_chars", "500"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "time_hub.cli", "annotate", *argv], env=env)
    deadline = time.time() + 300
    while not progress.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert progress.exists(), "the run finished before it could be killed"
    done = json.loads(progress.read_text())["done"]["documents"]
    assert 0 < done < 40
    capsys.readouterr()
    assert main(["annotate", *argv]) == 0
    assert f"resuming {killed} after {done} documents" in capsys.readouterr().err
    assert killed.read_text(encoding="utf-8") == one.read_text(encoding="utf-8")
    assert not progress.exists()


def test_jsonl_has_one_line_per_document(ud_model, raw_text, tmp_path):
    output = tmp_path / "out.jsonl"
    assert (
        main(["annotate", str(raw_text), "--model", str(ud_model), "--output", str(output), "--format", "jsonl"]) == 0
    )
    rows = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    texts = raw_text.read_text(encoding="utf-8").splitlines()
    assert [row["id"] for row in rows] == [f"{raw_text.name}:{i}" for i in range(1, len(texts) + 1)]
    for row, text in zip(rows, texts):
        words = [w for sentence in row["sentences"] for w in sentence["words"]]
        assert "".join(w["form"] for w in words) == "".join(text.split())
        assert {"lemma", "upos", "feats", "head", "deprel", "ner"} <= set(words[0])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "{path}: empty file (no text to annotate)"),
        (b"\n\n", "{path}: empty file (no text to annotate)"),
        (b"Hej med dig.\nok\x00\x01\x02\n", "{path}:2: binary data (a NUL byte), not text"),
        (b"Hej med dig.\nAndet dokument.\nbl\xe5b\xe6r\n", "{path}:3: not UTF-8 text (byte 0xe5)"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(ud_model, tmp_path, capsys, content, message):
    path, output = tmp_path / "in.txt", tmp_path / "out.conllu"
    path.write_bytes(content)
    assert main(["annotate", str(path), "--model", str(ud_model), "--output", str(output)]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"error: {message.format(path=path)}"]
    assert not output.exists() and not Path(str(output) + PROGRESS_SUFFIX).exists()


def test_missing_onnx_files_are_one_line_before_any_output(ud_model, raw_text, tmp_path, capsys):
    output = tmp_path / "out.conllu"
    argv = ["annotate", str(raw_text), "--model", str(ud_model), "--onnx", "int8", "--workers", "2"]
    assert main([*argv, "--output", str(output)]) == 2
    err = capsys.readouterr().err
    assert "model-int8.onnx not found: run `time-hub export" in err and "Traceback" not in err
    assert not output.exists()


def test_a_ud_model_without_segmenter_says_how_to_get_one(tiny_bert_dir, tmp_path, capsys):
    path = tmp_path / "in.txt"
    path.write_text("Hej.\n", encoding="utf-8")
    assert main(["annotate", str(path), "--model", str(tiny_bert_dir)]) == 2
    assert "has no segmenter" in capsys.readouterr().err


def test_silver_data_leaves_out_gold_sentences_and_is_made_once(ud_model, raw_text, shared, tmp_path, monkeypatch):
    gold = read_conllu(shared / "data" / "ud" / "da" / "dev.conllu")[:80]
    lines = raw_text.read_text(encoding="utf-8").splitlines()[:12]
    text = tmp_path / "text.txt"  # two gold sentences as lines of their own, one inside a longer line
    text.write_text("\n".join([*lines[:6], gold[0].text, lines[6], f"Forord. {gold[70].text}", *lines[7:]]) + "\n")
    kept, dropped = silver.text_lines([str(text)], [s.text for s in gold])
    assert kept == [line.strip() for line in lines if line.strip()] and dropped == 2
    output = tmp_path / "silver" / "da.conllu"
    sentences = silver.silver_sentences(str(ud_model), [str(text)], gold, output)
    assert sentences and len(read_conllu(output)) == len(sentences)
    assert json.loads(output.with_suffix(".json").read_text())["left_out_lines"] == 2

    def no_annotation(*args, **kwargs):
        raise AssertionError("the same inputs must re-use the analysis")

    monkeypatch.setattr(Pipeline, "from_pretrained", no_annotation)
    assert len(silver.silver_sentences(str(ud_model), [str(text)], gold, output)) == len(sentences)
    with pytest.raises(AssertionError, match="re-use"):  # other inputs: annotated again
        silver.silver_sentences(str(ud_model), [str(text)], gold, output, max_bytes=300)
    heads = ud_model / "ud_heads.safetensors"
    os.utime(heads, ns=(heads.stat().st_atime_ns, heads.stat().st_mtime_ns + 1000))
    with pytest.raises(AssertionError, match="re-use"):  # a teacher trained again: annotated again
        silver.silver_sentences(str(ud_model), [str(text)], gold, output)


def test_ud_fine_tuning_with_silver_data(ud_model, tiny_bert_dir, raw_text, shared, tmp_path, capsys):
    sentences = read_conllu(shared / "data" / "ud" / "da" / "dev.conllu")
    write_conllu(tmp_path / "train.conllu", sentences[:32])
    write_conllu(tmp_path / "dev.conllu", sentences[32:40])
    teacher = tmp_path / "teacher"  # a teacher without a segmenter of its own
    shutil.copytree(ud_model, teacher, ignore=shutil.ignore_patterns(segment.FOLDER))
    argv = ["finetune", "--task", "ud", "--model", str(tiny_bert_dir), "--train", str(tmp_path / "train.conllu"),
            "--dev", str(tmp_path / "dev.conllu"), "--max_steps", "4", "--per_device_train_batch_size", "8",
            "--use_cpu", "true", "--report_to", "none", "--max_length", "64",
            "--silver_teacher", str(teacher)]  # fmt: skip
    assert main([*argv, "--output_dir", str(tmp_path / "no-text")]) == 2  # the teacher needs its text
    assert "silver_teacher and silver_text go together" in capsys.readouterr().err
    argv += ["--silver_text", f"[{raw_text}]", "--gold_repeat", "3"]
    assert main([*argv, "--output_dir", str(tmp_path / "no-segmenter")]) == 2  # nothing can read the raw text
    assert "has no segmenter" in capsys.readouterr().err
    assert main([*argv, "--segmenter_steps", "2", "--output_dir", str(tmp_path / "ud")]) == 0  # the student's reads it
    training = json.loads((tmp_path / "ud" / "results.json").read_text())["extra"]["training"]
    assert training["sentences"] == 32 and training["silver"]["gold_repeat"] == 3
    assert training["silver"]["sentences"] == len(read_conllu(tmp_path / "ud" / "silver.conllu")) > 0
