"""CoNLL-U reader/writer: byte-exact round trips on real treebanks, special lines, clear errors, splitting."""

import pytest

from time_hub.tasks.conllu import (
    format_conllu,
    parse_conllu,
    read_conllu,
    replace_columns,
    resolve_conllu,
    split_conllu_file,
    split_sentences,
    write_conllu,
)

SAMPLE = """# sent_id = s1
# text = Du pain frais.
1-2\tDu\t_\t_\t_\t_\t_\t_\t_\t_
1\tde\tde\tADP\t_\t_\t3\tcase\t_\t_
2\tle\tle\tDET\t_\tDefinite=Def\t3\tdet\t_\t_
3\tpain\tpain\tNOUN\t_\tGender=Masc\t0\troot\t_\t_
3.1\tmange\t_\tVERB\t_\t_\t_\t_\t0:root\t_
4\tfrais\tfrais\tADJ\t_\t_\t3\tamod\t_\tSpaceAfter=No
5\t.\t.\tPUNCT\t_\t_\t3\tpunct\t_\t_

# sent_id = s2
1\tOui\toui\tINTJ\t_\t_\t0\troot\t_\t_

"""


@pytest.mark.parametrize("lang", ["da", "es", "cs"])  # es: multiword tokens; cs: both and empty nodes
def test_round_trip_is_byte_exact_on_real_treebanks(shared, lang, tmp_path):
    path = shared / "data" / "ud" / lang / "dev.conllu"
    sentences = read_conllu(path)
    out = write_conllu(tmp_path / "copy.conllu", sentences)
    assert out.read_bytes() == path.read_bytes()


def test_real_counts_match_the_shared_inventory(shared):
    sentences = read_conllu(shared / "data" / "ud" / "da" / "dev.conllu")
    assert len(sentences) == 564
    assert sum(len(s.words) for s in sentences) == 10332
    assert sentences[0].sent_id == "dev-0"
    assert sentences[0].text == "Hvor kommer julemanden fra?"
    assert sentences[0].forms == ["Hvor", "kommer", "julemanden", "fra", "?"]


def test_syntactic_words_exclude_ranges_and_empty_nodes():
    first, second = parse_conllu(SAMPLE)
    assert [w.id for w in first.words] == [1, 2, 3, 4, 5]
    assert first.forms == ["de", "le", "pain", "frais", "."]
    assert [w.head for w in first.words] == [3, 3, 0, 3, 3]
    assert first.comments == ["# sent_id = s1", "# text = Du pain frais."]
    assert first.words[3].misc == "SpaceAfter=No" and first.words[3].line == 8
    assert second.sent_id == "s2" and second.line == 11
    assert format_conllu([first, second]) == SAMPLE


def test_replace_columns_changes_only_predicted_columns():
    sentence = parse_conllu(SAMPLE)[0]
    new = replace_columns(
        sentence,
        upos=["X"] * 5,
        head=[0, 1, 1, 1, 1],
        deprel=["root", "dep", "dep", "dep", "dep"],
        lemma=list("abcde"),
    )
    text = new.to_text()
    assert "1-2\tDu\t_" in text and "3.1\tmange" in text and "# text = Du pain frais." in text
    assert "1\tde\ta\tX\t_\t_\t0\troot\t_\t_" in text
    assert "4\tfrais\td\tX\t_\t_\t1\tdep\t_\tSpaceAfter=No" in text
    assert sentence.words[0].upos == "ADP"  # the original is untouched
    reread = parse_conllu(text)[0]
    assert [w.head for w in reread.words] == [0, 1, 1, 1, 1]
    with pytest.raises(ValueError, match="3 values for upos, sentence has 5 words"):
        replace_columns(sentence, upos=["X"] * 3)
    with pytest.raises(ValueError, match="cannot replace"):
        replace_columns(sentence, form=["x"] * 5)


WORD = "1\ta\ta\tX\t_\t_\t0\troot\t_\t_"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("# c\n1\ta\ta\tX\t_\t_\t0\n", 2, "expected 10 tab-separated columns, got 7"),
        (f"{WORD}\nx\tb\tb\tX\t_\t_\t1\tdep\t_\t_\n", 2, "bad ID 'x'"),
        (f"{WORD}\n3\tb\tb\tX\t_\t_\t1\tdep\t_\t_\n", 2, "word ID 3 out of sequence, expected 2"),
        (f"{WORD}\n2\tb\tb\tX\t_\t_\ta\tdep\t_\t_\n", 2, "HEAD must be a non-negative integer, got 'a'"),
        (f"{WORD}\n2\tb\tb\tX\t_\t_\t-1\tdep\t_\t_\n", 2, "HEAD must be a non-negative integer"),
        (f"{WORD}\n2\tb\tb\tX\t_\t_\t7\tdep\t_\t_\n", 2, "HEAD 7 points outside the sentence of 2 words"),
        (f"{WORD}\n2\tb\tb\tX\t_\t_\t2\tdep\t_\t_\n", 2, "word 2 is its own HEAD"),
        (f"{WORD}\n# late\n", 2, "comment line inside a sentence"),
        (f"{WORD}\n2\tb\t\tX\t_\t_\t1\tdep\t_\t_\n", 2, "empty column LEMMA"),
        (f"{WORD}\n3-2\tbc\t_\t_\t_\t_\t_\t_\t_\t_\n", 2, "bad multiword token range 3-2"),
        (f"{WORD}\n2-3\tbc\t_\t_\t_\t_\t_\t_\t_\t_\n2\tb\tb\tX\t_\t_\t1\tdep\t_\t_\n", 2, "covers words beyond"),
        (f"{WORD}\n5.1\tb\t_\t_\t_\t_\t_\t_\t_\t_\n", 2, "empty node 5.1 must follow word 1"),
        ("# only a comment\n", 1, "sentence has no syntactic words"),
        (f"{WORD}\n \n", 2, "whitespace-only line"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, text, line, message):
    path = tmp_path / "dev.conllu"
    path.write_text(f"{WORD}\n\n" + text + "\n")  # one good sentence first: line numbers are file-wide
    with pytest.raises(ValueError) as error:
        read_conllu(path)
    assert str(error.value).startswith(f"{path}:{line + 2}: ")
    assert message in str(error.value)


def test_split_first_part_and_seeded(shared):
    sentences = read_conllu(shared / "data" / "ud" / "da" / "dev.conllu")[:50]
    train, held_out = split_sentences(sentences, eval_fraction=0.2)
    assert train == sentences[:40] and held_out == sentences[40:]

    seeded = split_sentences(sentences, eval_fraction=0.2, seed=3)
    assert seeded == split_sentences(sentences, eval_fraction=0.2, seed=3)
    assert seeded[1] != held_out and len(seeded[1]) == 10
    ids = [s.sent_id for s in seeded[0] + seeded[1]]
    assert sorted(ids) == sorted(s.sent_id for s in sentences)
    assert [s.sent_id for s in seeded[0]] == [s.sent_id for s in sentences if s in seeded[0]]  # file order kept

    for bad in (0.0, 1.0):
        with pytest.raises(ValueError, match="eval_fraction"):
            split_sentences(sentences, eval_fraction=bad)
    with pytest.raises(ValueError, match="one part would be empty"):
        split_sentences(sentences[:2], eval_fraction=0.1)


def test_split_conllu_file_writes_two_parsable_files(shared, tmp_path):
    source = tmp_path / "all.conllu"
    write_conllu(source, read_conllu(shared / "data" / "ud" / "da" / "dev.conllu")[:20])
    counts = split_conllu_file(source, tmp_path / "train.conllu", tmp_path / "eval.conllu", eval_fraction=0.25)
    assert counts == (15, 5)
    assert (tmp_path / "train.conllu").read_text() + (tmp_path / "eval.conllu").read_text() == source.read_text()


def test_resolve_conllu_finds_the_split_in_a_treebank_folder(tmp_path, shared):
    dev = shared / "data/ud/da/dev.conllu"
    assert resolve_conllu(dev, "dev") == dev
    folder = tmp_path / "UD_Danish-DDT"
    folder.mkdir()
    (folder / "da_ddt-ud-dev.conllu").write_bytes(dev.read_bytes())
    assert resolve_conllu(folder, "dev") == folder / "da_ddt-ud-dev.conllu"
    with pytest.raises(FileNotFoundError, match=r"expected one \*-ud-train.conllu, found 0"):
        resolve_conllu(folder, "train")
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        resolve_conllu(tmp_path / "missing.conllu", "dev")
