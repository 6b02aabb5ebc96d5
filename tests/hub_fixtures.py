"""Hub-shaped fixtures for the release path, served by tests/hub_server.py: the repositories the release recipes
name, with the real layouts and columns, filled from ../shared (small: the point is the code path, not the scores).

- `FacebookAI/xlm-roberta-large`: the real XLM-R config class and tokenizer (../shared/tokenizers/xlm-roberta),
  4 layers of hidden size 32 with random weights (distilled at `teacher_layer: 2` by a recipe override);
- `uonlp/CulturaX`: configs hu and ga, parquet shards `<lang>/<lang>_part_0000{0,1}.parquet` (256 lines, the rest)
  with CulturaX's columns (text, timestamp, url, source), from ../shared/data/text;
- `openlanguagedata/flores_plus`: configs hun_Latn and gle_Latn, `dev/<config>.parquet` with FLORES+'s columns;
- `unimelb-nlp/wikiann`: configs hu and ga, train/validation/test parquet with tokens, ner_tags (a ClassLabel sequence
  with WikiANN's names), langs, spans; sentences of ../shared/data/ner/da (WikiANN's tag set, other content);
- `universal-dependencies/UD_Hungarian-Szeged`: raw `hu_szeged-ud-{train,dev}.conllu` from ../shared/data/ud/hu;
- `universal-dependencies/universal_dependencies`: UD's parquet conversion (config ga_idt, train/validation, the
  columns idx, text, tokens, lemmas, upos (a ClassLabel), xpos, feats, head, deprel, deps, misc), from ud/ga/dev.

`seed(hub, shared, work)` writes them under `work` and pushes them with the real client as FIXTURE_TOKEN's user,
who belongs to those organisations.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from hub_server import HubServer, hub_env, run_client

FIXTURE_TOKEN = "hf_fixtures"
FIXTURE_ORGS = ["FacebookAI", "uonlp", "openlanguagedata", "unimelb-nlp", "universal-dependencies"]
LANGS = {"hu": "hun_Latn", "ga": "gle_Latn"}
WIKIANN_TAGS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
TEACHER = "FacebookAI/xlm-roberta-large"


def configs_card(title: str, configs: dict[str, dict[str, str]]) -> str:
    """A dataset card whose `configs:` metadata maps config -> split -> file pattern (what the Hub's loader reads)."""
    lines = ["---", "configs:"]
    for name, splits in configs.items():
        lines += [f"- config_name: {name}", "  data_files:"]
        lines += [f"  - split: {split}\n    path: {path}" for split, path in splits.items()]
    return "\n".join(lines + ["---", f"# {title} (test fixture)", ""])


def teacher(folder: Path, shared: Path) -> None:
    from transformers import AutoTokenizer, XLMRobertaConfig, XLMRobertaModel

    tokenizer = AutoTokenizer.from_pretrained(shared / "tokenizers" / "xlm-roberta")
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=514, type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2,
    )  # fmt: skip
    XLMRobertaModel(config, add_pooling_layer=False).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def culturax(folder: Path, shared: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    for lang in LANGS:
        lines = [x for x in (shared / "data" / "text" / f"{lang}.txt").read_text(encoding="utf-8").splitlines() if x]
        lines = lines[:1500]
        (folder / lang).mkdir(parents=True)
        table = {"text": lines, "timestamp": ["2021-01-01 00:00:00"] * len(lines)}
        table |= {"url": [f"https://example.org/{i}" for i in range(len(lines))], "source": ["mC4"] * len(lines)}
        # Two shards, so that a network drop can hit the stream between them (the corpus reads 256 lines at a time).
        for shard, rows in {0: slice(0, 256), 1: slice(256, None)}.items():
            part = {column: values[rows] for column, values in table.items()}
            pq.write_table(pa.table(part), folder / lang / f"{lang}_part_{shard:05d}.parquet")
    card = configs_card("CulturaX", {lang: {"train": f"{lang}/*.parquet"} for lang in LANGS})
    (folder / "README.md").write_text(card, encoding="utf-8")


def flores(folder: Path, shared: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    (folder / "dev").mkdir(parents=True)
    for lang, config in LANGS.items():
        lines = [x for x in (shared / "data" / "text" / f"{lang}.txt").read_text(encoding="utf-8").splitlines() if x]
        lines = lines[-200:]  # not among the CulturaX lines
        n = len(lines)
        iso, script = config.split("_")
        table = {"id": list(range(n)), "iso_639_3": [iso] * n, "iso_15924": [script] * n, "glottocode": ["x"] * n}
        table |= {"text": lines, "url": ["https://example.org"] * n, "domain": ["wikinews"] * n, "topic": ["t"] * n}
        table |= {"has_image": [False] * n, "has_hyperlink": [False] * n, "last_updated": ["2.1"] * n}
        pq.write_table(pa.table(table), folder / "dev" / f"{config}.parquet")
    card = configs_card("FLORES+", {config: {"dev": f"dev/{config}.parquet"} for config in LANGS.values()})
    (folder / "README.md").write_text(card, encoding="utf-8")


def wikiann(folder: Path, shared: Path) -> None:
    from datasets import ClassLabel, Dataset, Features, Sequence, Value

    from time_hub.tasks.ner import read_iob2

    sentences = read_iob2(shared / "data" / "ner" / "da" / "dev.iob2")
    features = Features(
        {
            "tokens": Sequence(Value("string")),
            "ner_tags": Sequence(ClassLabel(names=WIKIANN_TAGS)),
            "langs": Sequence(Value("string")),
            "spans": Sequence(Value("string")),
        }
    )
    parts = {"train": sentences[:120], "validation": sentences[120:180], "test": sentences[180:240]}
    for lang in LANGS:
        (folder / lang).mkdir(parents=True)
        for split, part in parts.items():
            rows = {
                "tokens": [s.tokens for s in part],
                "ner_tags": [[WIKIANN_TAGS.index(t) for t in s.tags] for s in part],
                "langs": [[lang] * len(s.tokens) for s in part],
                "spans": [[] for _ in part],
            }
            Dataset.from_dict(rows, features=features).to_parquet(folder / lang / f"{split}-00000-of-00001.parquet")
    configs = {lang: {split: f"{lang}/{split}-*.parquet" for split in parts} for lang in LANGS}
    (folder / "README.md").write_text(configs_card("WikiANN", configs), encoding="utf-8")


def treebank(folder: Path, shared: Path) -> None:
    folder.mkdir(parents=True)
    for split in ("train", "dev"):
        shutil.copyfile(shared / "data" / "ud" / "hu" / f"{split}.conllu", folder / f"hu_szeged-ud-{split}.conllu")


COLUMN_ATTRIBUTES = {"tokens": "form", "lemmas": "lemma", "xpos": "xpos", "feats": "feats", "head": "head",
                     "deprel": "deprel", "deps": "deps", "misc": "misc"}  # fmt: skip
UPOS_NAMES = "NOUN PUNCT ADP NUM SYM SCONJ ADJ PART DET CCONJ PROPN PRON X _ ADV INTJ VERB AUX".split()


def ud_parquet(folder: Path, shared: Path) -> None:
    """UD's parquet conversion as the Hub serves it: config `ga_idt`, train/validation, upos as a ClassLabel."""
    from datasets import ClassLabel, Dataset, Features, Sequence, Value

    from time_hub.tasks.conllu import read_conllu

    sentences = read_conllu(shared / "data" / "ud" / "ga" / "dev.conllu")
    text = Sequence(Value("string"))
    features = Features({"idx": Value("string"), "text": Value("string"), "tokens": text, "lemmas": text,
                         "upos": Sequence(ClassLabel(names=UPOS_NAMES)), "xpos": text, "feats": text, "head": text,
                         "deprel": text, "deps": text, "misc": text})  # fmt: skip
    (folder / "ga_idt").mkdir(parents=True)
    for split, part in (("train", sentences[:360]), ("validation", sentences[360:])):
        rows = {name: [] for name in features}
        for s in part:
            rows["idx"].append(s.sent_id)
            rows["text"].append(s.text)
            for column, attribute in COLUMN_ATTRIBUTES.items():
                values = [str(getattr(w, attribute)) for w in s.words]
                rows[column].append([None if v == "_" else v for v in values])
            rows["upos"].append([UPOS_NAMES.index(w.upos) for w in s.words])
        Dataset.from_dict(rows, features=features).to_parquet(folder / "ga_idt" / f"{split}-00000-of-00001.parquet")
    card = configs_card(
        "universal_dependencies", {"ga_idt": {s: f"ga_idt/{s}-*.parquet" for s in ("train", "validation")}}
    )
    (folder / "README.md").write_text(card, encoding="utf-8")


REPOS = {  # repo id -> (type, builder)
    TEACHER: ("model", teacher),
    "uonlp/CulturaX": ("dataset", culturax),
    "openlanguagedata/flores_plus": ("dataset", flores),
    "unimelb-nlp/wikiann": ("dataset", wikiann),
    "universal-dependencies/UD_Hungarian-Szeged": ("dataset", treebank),
    "universal-dependencies/universal_dependencies": ("dataset", ud_parquet),
}


def seed(hub: HubServer, shared: Path, work: Path) -> list[str]:
    """Build every fixture under `work` and push it to `hub`; returns the repo ids."""
    uploads = []
    for repo_id, (repo_type, build) in REPOS.items():
        folder = work / repo_id.replace("/", "--")
        build(folder, shared)
        uploads.append((repo_id, repo_type, str(folder)))
    run_client(
        f"""
        from huggingface_hub import HfApi
        api = HfApi()
        for repo_id, repo_type, folder in {uploads!r}:
            api.create_repo(repo_id, repo_type=repo_type, exist_ok=True)
            api.upload_folder(folder_path=folder, repo_id=repo_id, repo_type=repo_type)
        """,
        hub_env(hub, FIXTURE_TOKEN),
        timeout=600,
    )
    return list(REPOS)
