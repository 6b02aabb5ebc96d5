"""Structured pruning (`time-hub prune`): tiny BERT / XLM-R models with the shared tokenizer and real Danish text.

Exactness is tested where it holds: cut layers (exactly the source with those layers deleted), FFN neurons and heads
that contribute nothing (zeroed output weights: zero importance, dropped, outputs unchanged), and the svd map under a
rotation that fixes the all-ones direction (LayerNorm commutes with exactly those)."""

import json
import time

import pytest
import torch
from transformers import (
    AutoModel,
    BertConfig,
    BertForMaskedLM,
    BertModel,
    DistilBertConfig,
    XLMRobertaConfig,
    XLMRobertaModel,
)

from time_hub.cli import main as cli_main
from time_hub.compress.prune import (
    ROLES,
    Plan,
    PruneArguments,
    hidden_scores,
    importance_pass,
    main,
    map_hidden,
    mask_tokens,
    principal_directions,
    prune,
    prune_state_dict,
    resolve_layers,
    select,
    top_indices,
    unit_scores,
)

FAST = {"importance_lines": 24, "batch_size": 8, "max_seq_length": 32}
POOLER = {"pooler.dense.weight", "pooler.dense.bias"}


def tiny_config(tokenizer, cls=BertConfig, layers: int = 2, **kwargs):
    return cls(
        vocab_size=len(tokenizer),
        hidden_size=48,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=96,
        max_position_embeddings=66,
        pad_token_id=tokenizer.pad_token_id,
        **kwargs,
    )


def save(model, tokenizer, path):
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, da_lines):
    path = tmp_path_factory.mktemp("corpus") / "da.txt"
    path.write_text("\n".join(da_lines[:48]) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def bert4(tmp_path_factory, tokenizer):
    """A 4-layer BERT without pooler (like the teacher)."""
    torch.manual_seed(0)
    return save(
        BertModel(tiny_config(tokenizer, layers=4), add_pooling_layer=False),
        tokenizer,
        tmp_path_factory.mktemp("bert4"),
    )


def run(source, corpus, out, **kwargs) -> dict:
    return prune(PruneArguments(model=str(source), corpus=str(corpus), output_dir=str(out), **(FAST | kwargs)))


def load(path, **kwargs):
    return AutoModel.from_pretrained(path, add_pooling_layer=False, **kwargs).eval()


def inputs(tokenizer, da_lines):
    return tokenizer(da_lines[100:104], padding=True, truncation=True, max_length=32, return_tensors="pt")


def test_resolve_layers():
    assert resolve_layers("all", 4) == [0, 1, 2, 3]
    assert resolve_layers("every-3", 12) == [2, 5, 8, 11]  # the top layer is always kept
    assert resolve_layers("every-5", 12) == [1, 6, 11]
    assert resolve_layers("last-2", 12) == [10, 11] and resolve_layers("first-2", 12) == [0, 1]
    assert resolve_layers("11,0,3,7", 12) == [0, 3, 7, 11] and resolve_layers([5], 12) == [5]
    errors = {
        "every-0": "K must be at least 1",
        "0,12": "layer 12 is out of range for the source's 12",
        "1,1": "given twice",
        "top-3": "use all, every-K",
        "last-13": "only 12 layers",
    }
    for spec, message in errors.items():
        with pytest.raises(ValueError, match=message):
            resolve_layers(spec, 12)


def test_selection_helpers():
    assert top_indices(torch.tensor([0.5, 2.0, 0.0, 2.0, 1.0]), 3).tolist() == [1, 3, 4]
    assert top_indices(torch.tensor([1.0, 1.0, 1.0]), 2).tolist() == [0, 1]  # ties: lower index
    w = torch.arange(12.0).view(3, 4)
    assert torch.equal(select(w, torch.tensor([2, 0])), w[[2, 0]])
    assert torch.equal(select(w, cols=torch.tensor([1, 3])), w[:, [1, 3]])
    assert torch.equal(select(w, torch.tensor([1]), torch.tensor([0, 2])), torch.tensor([[4.0, 6.0]]))


def test_mask_tokens_follows_bert():
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 1000, (64, 200))
    special = torch.zeros_like(ids, dtype=torch.bool)
    special[:, 0] = special[:, -20:] = True
    masked, labels = mask_tokens(ids, special, 3, 1000, generator)
    chosen = labels != -100
    assert not chosen[special].any() and torch.equal(labels[chosen], ids[chosen])
    assert torch.equal(masked[~chosen], ids[~chosen])
    assert 0.13 < chosen.float().sum() / (~special).sum() < 0.17
    share = (masked[chosen] == 3).float().mean()
    kept = (masked[chosen] == ids[chosen]).float().mean()
    assert 0.75 < share < 0.85 and 0.07 < kept < 0.14
    few, few_labels = mask_tokens(ids[:8, :3], torch.tensor([[True, False, True]] * 8), 3, 1000, generator)
    assert ((few_labels != -100).sum(1) == 1).all()  # one prediction per sequence even when 15 % rounds to none


def test_importance_is_accumulated_gradient_times_weight(tokenizer, da_lines):
    torch.manual_seed(0)
    model = BertModel(tiny_config(tokenizer), add_pooling_layer=False).eval()
    head = lambda h: h @ model.get_input_embeddings().weight.T  # noqa: E731
    batches = []
    for i in (0, 4):
        enc = tokenizer(da_lines[i : i + 4], padding=True, truncation=True, max_length=24, return_tensors="pt")
        labels = torch.full_like(enc["input_ids"], -100)
        labels[:, 2] = enc["input_ids"][:, 2]
        batches.append({**enc, "labels": labels})
    expected = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for batch in batches:
        model.zero_grad()
        labels = batch["labels"]
        hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        torch.nn.functional.cross_entropy(head(hidden[labels != -100]), labels[labels != -100]).backward()
        for n, p in model.named_parameters():
            expected[n] += (p.grad * p).abs().detach()
    saliency, stats = importance_pass(model, head, [dict(b) for b in batches])
    assert stats["batches"] == 2 and stats["predicted_tokens"] == 8
    for name, value in expected.items():
        torch.testing.assert_close(saliency[name], value, rtol=1e-4, atol=1e-9)


def test_unit_and_hidden_scores_aggregate_the_right_entries():
    torch.manual_seed(0)
    D, A, I = 8, 2, 6  # noqa: E741
    shapes = {
        "embeddings.word_embeddings.weight": (10, D),
        "embeddings.position_embeddings.weight": (5, D),
        "embeddings.token_type_embeddings.weight": (2, D),
        "embeddings.LayerNorm.weight": (D,),
        "embeddings.LayerNorm.bias": (D,),
    }
    layer = {
        "attention.self.query": (D, D),
        "attention.self.key": (D, D),
        "attention.self.value": (D, D),
        "attention.output.dense": (D, D),
        "intermediate.dense": (I, D),
        "output.dense": (D, I),
    }
    for name, shape in layer.items():
        shapes[f"encoder.layer.0.{name}.weight"], shapes[f"encoder.layer.0.{name}.bias"] = shape, shape[:1]
    for name in ("attention.output.LayerNorm", "output.LayerNorm"):
        shapes[f"encoder.layer.0.{name}.weight"] = shapes[f"encoder.layer.0.{name}.bias"] = (D,)
    s = {name: torch.rand(shape) for name, shape in shapes.items()}
    scores = unit_scores(s, 0, A)

    def w(name):  # weight of a layer module
        return s[f"encoder.layer.0.{name}.weight"]

    def b(name):  # its bias
        return s[f"encoder.layer.0.{name}.bias"]

    q, k, v, o = (f"attention.{m}" for m in ("self.query", "self.key", "self.value", "output.dense"))
    for j in range(I):
        direct = w("intermediate.dense")[j].sum() + b("intermediate.dense")[j] + w("output.dense")[:, j].sum()
        torch.testing.assert_close(scores["ffn"][j], direct)
    for h in range(A):
        rows = slice(h * 4, h * 4 + 4)
        direct = sum(w(m)[rows].sum() + b(m)[rows].sum() for m in (q, k, v)) + w(o)[:, rows].sum()
        torch.testing.assert_close(scores["heads"][h], direct)
        r = h * 4 + 1  # head h's dim 1: Q and K rows share it; V row and output column share theirs
        torch.testing.assert_close(scores["qk"][h, 1], sum(w(m)[r].sum() + b(m)[r] for m in (q, k)))
        torch.testing.assert_close(scores["v"][h, 1], w(v)[r].sum() + b(v)[r] + w(o)[:, r].sum())
    hidden = hidden_scores(s, D)
    for d in (0, 5):
        direct = sum(s[f"embeddings.{e}_embeddings.weight"][:, d].sum() for e in ("word", "position", "token_type"))
        direct += s["embeddings.LayerNorm.weight"][d] + s["embeddings.LayerNorm.bias"][d]
        direct += sum(w(m)[:, d].sum() for m in (q, k, v, "intermediate.dense"))
        direct += sum(w(m)[d].sum() + b(m)[d] for m in (o, "output.dense"))
        direct += sum(w(m)[d] + b(m)[d] for m in ("attention.output.LayerNorm", "output.LayerNorm"))
        torch.testing.assert_close(hidden[d], direct)
    assert {"pooler.dense.weight", "pooler.dense.bias"} <= set(ROLES)


def test_layers_only_is_the_source_with_those_layers_deleted(bert4, corpus, tmp_path, tokenizer, da_lines):
    report = run(bert4, corpus, tmp_path / "out", layers="1,3")
    assert report["layers"] == [1, 3] and report["objective"] is None and report["lines_used"] == 0
    source = load(bert4)
    source.encoder.layer = torch.nn.ModuleList([source.encoder.layer[1], source.encoder.layer[3]])
    batch = inputs(tokenizer, da_lines)
    with torch.inference_mode():
        assert torch.equal(load(tmp_path / "out")(**batch).last_hidden_state, source(**batch).last_hidden_state)


def test_dead_ffn_neurons_are_dropped_and_outputs_kept(tokenizer, corpus, tmp_path, da_lines):
    torch.manual_seed(1)
    model = BertModel(tiny_config(tokenizer), add_pooling_layer=False)
    dead = [torch.tensor([0, 5, 17, 40, 41, 90]), torch.tensor([3, 4, 60, 61, 62, 95])]
    with torch.no_grad():
        for layer, d in zip(model.encoder.layer, dead):
            layer.output.dense.weight[:, d] = 0
    source = save(model, tokenizer, tmp_path / "source")
    report = run(source, corpus, tmp_path / "out", intermediate_size=90)
    assert report["ffn_sizes"] == {"before": 96, "after": [90, 90]} and report["objective"] == "tied_embedding_proxy"
    pruned, source_model = load(tmp_path / "out"), load(source)
    for new, old, d in zip(pruned.encoder.layer, source_model.encoder.layer, dead):
        alive = torch.tensor([j for j in range(96) if j not in d.tolist()])
        assert torch.equal(new.intermediate.dense.weight, old.intermediate.dense.weight[alive])
        assert torch.equal(new.output.dense.weight, old.output.dense.weight[:, alive])
    batch = inputs(tokenizer, da_lines)
    with torch.inference_mode():
        torch.testing.assert_close(
            pruned(**batch).last_hidden_state, source_model(**batch).last_hidden_state, atol=1e-5, rtol=0
        )


def _kept_hidden_dims(new, old) -> torch.Tensor:
    """The source dims the sliced model kept: its embedding columns are exact copies."""
    a, b = new.embeddings.word_embeddings.weight, old.embeddings.word_embeddings.weight
    return torch.tensor([int((b - a[:, [c]]).abs().sum(0).argmin()) for c in range(a.shape[1])])


def _attention_block(layer, x):
    """Output projection of the self-attention (before residual and LayerNorm): what a head contributes."""
    return layer.attention.output.dense(layer.attention.self(x)[0])


@pytest.mark.parametrize("dead_dims", [False, True], ids=["whole-heads", "head-dims"])
def test_dead_heads_or_head_dims_are_dropped(tokenizer, corpus, tmp_path, dead_dims):
    """Whole heads: heads whose output-projection columns are zero go. Head dims (hidden 24 with 4 heads: 6 of each
    head's 12 dims): dims whose Q/K rows resp. V rows and output columns are zero go, and Q is rescaled so the
    kept dims' attention logits are unchanged."""
    torch.manual_seed(2)
    model = BertModel(tiny_config(tokenizer), add_pooling_layer=False)
    dead_heads = [[1, 3], [0, 2]]
    with torch.no_grad():
        for layer, heads in zip(model.encoder.layer, dead_heads):
            att = layer.attention
            if dead_dims:
                for h in range(4):
                    qk, v = [h * 12 + d for d in (1, 3, 5, 7, 9, 11)], [h * 12 + d for d in range(6, 12)]
                    for m in (att.self.query, att.self.key):
                        m.weight[qk], m.bias[qk] = 0, 0
                    att.self.value.weight[v], att.self.value.bias[v], att.output.dense.weight[:, v] = 0, 0, 0
            else:
                for h in heads:
                    att.output.dense.weight[:, h * 12 : h * 12 + 12] = 0
    source = save(model, tokenizer, tmp_path / "source")
    heads = 4 if dead_dims else 2
    report = run(source, corpus, tmp_path / "out", num_heads=heads, hidden_size=24)
    assert report["head_size"] == {"before": 12, "after": 24 // heads}
    if not dead_dims:
        assert report["heads"]["kept_per_layer"] == [[0, 2], [1, 3]]
    pruned, source_model = load(tmp_path / "out"), load(source)
    kept = _kept_hidden_dims(pruned, source_model)
    x = torch.zeros(2, 7, 48)
    x[..., kept] = torch.randn(2, 7, 24)  # inputs in the kept dims: the sliced block must then compute the same
    for new, old in zip(pruned.encoder.layer, source_model.encoder.layer):
        with torch.inference_mode():
            torch.testing.assert_close(
                _attention_block(new, x[..., kept]), _attention_block(old, x)[..., kept], atol=1e-5, rtol=0
            )


def _rotation_fixing_ones(d: int) -> torch.Tensor:
    basis = torch.linalg.qr(torch.cat([torch.ones(d, 1), torch.randn(d, d - 1)], 1)).Q  # first column +-1/sqrt(d)
    return basis @ torch.block_diag(torch.ones(1, 1), torch.linalg.qr(torch.randn(d - 1, d - 1)).Q) @ basis.T


def test_svd_map_is_exact_for_rotations_that_fix_the_ones_direction(tokenizer, da_lines):
    """h' = P h through every layer when P is orthogonal with P 1 = 1 and the LayerNorm gammas are 1 (betas free):
    then LayerNorm's mean and variance are unchanged. A generic rotation breaks this, which is why the svd map is
    an initialisation, not an equivalent model."""
    torch.manual_seed(3)
    model = BertModel(tiny_config(tokenizer), add_pooling_layer=False).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("LayerNorm.bias"):
                p.normal_()
    keys = list(model.state_dict())
    whole = {"qk_rows": [torch.arange(48)] * 2, "v_rows": [torch.arange(48)] * 2, "ffn": [torch.arange(96)] * 2}
    batch = inputs(tokenizer, da_lines)
    with torch.inference_mode():
        reference = model(**batch).last_hidden_state
    for P, exact in ((_rotation_fixing_ones(48), True), (torch.linalg.qr(torch.randn(48, 48)).Q, False)):
        rotated = BertModel(model.config, add_pooling_layer=False).eval()
        plan = Plan([0, 1], [[0, 1, 2, 3]] * 2, hidden=P, **whole)
        rotated.load_state_dict(prune_state_dict(model.state_dict(), keys, plan))
        with torch.inference_mode():
            diff = (rotated(**batch).last_hidden_state - reference @ P.T).abs().max()
        assert diff < 1e-4 if exact else diff > 1e-2
    gamma = torch.rand(48)  # not 1: then gamma' is the diagonal of P diag(gamma) P^T, the documented approximation
    torch.testing.assert_close(map_hidden(gamma, "gamma", P), torch.diagonal(P @ torch.diag(gamma) @ P.T))


def test_principal_directions_are_orthonormal_and_ordered():
    torch.manual_seed(4)
    states = (torch.randn(500, 6) * torch.tensor([5.0, 0.1, 3.0, 0.2, 1.0, 0.3]) + 7).double()
    P, share = principal_directions(len(states), states.sum(0), states.T @ states, 3)
    torch.testing.assert_close(P @ P.T, torch.eye(3), atol=1e-5, rtol=0)
    assert set(P.abs().argmax(1).tolist()) == {0, 2, 4}  # the three high-variance axes, largest first
    assert P.abs().argmax(1).tolist() == [0, 2, 4] and 0.98 < share <= 1


def test_svd_pruned_model_loads(bert4, corpus, tmp_path, tokenizer, da_lines):
    report = run(bert4, corpus, tmp_path / "out", hidden_size=24, hidden_init="svd", intermediate_size=64)
    assert report["hidden_init"] == "svd" and 0 < report["svd_variance_share"] <= 1
    assert "LayerNorm" in report["hidden_note"]
    model = load(tmp_path / "out")
    assert model.config.hidden_size == 24 and model.config.intermediate_size == 64
    with torch.inference_mode():
        assert torch.isfinite(model(**inputs(tokenizer, da_lines)).last_hidden_state).all()


@pytest.mark.parametrize("family", ["bert-pooler", "xlm-roberta-pooler", "bert-mlm"])
def test_output_loads_as_stock_model_with_report(family, tokenizer, corpus, tmp_path, da_lines):
    torch.manual_seed(5)
    if family == "bert-mlm":
        model = BertForMaskedLM(tiny_config(tokenizer, layers=3))
    elif family == "bert-pooler":
        model = BertModel(tiny_config(tokenizer, layers=3))
    else:
        model = XLMRobertaModel(tiny_config(tokenizer, XLMRobertaConfig, layers=3))
    source = save(model, tokenizer, tmp_path / "source")
    out = tmp_path / "out"
    argv = [str(source), "--corpus", str(corpus), "--output_dir", str(out), "--layers", "last-2", "--num_heads", "2"]
    argv += ["--hidden_size", "24", "--intermediate_size", "40", "--importance_lines", "16", "--batch_size", "8"]
    assert main(argv) == 0
    report = json.loads((out / "prune_report.json").read_text())
    pooler = family != "bert-mlm"
    loaded, info = AutoModel.from_pretrained(out, output_loading_info=True)
    assert type(loaded) is type(AutoModel.from_config(model.config)) and not info["unexpected_keys"]
    assert info["missing_keys"] == (set() if pooler else POOLER)  # a pooler only where the source stores one
    c = loaded.config
    assert (c.num_hidden_layers, c.num_attention_heads, c.hidden_size, c.intermediate_size) == (2, 2, 24, 40)
    assert c.model_type == model.config.model_type and c.vocab_size == model.config.vocab_size
    assert c.max_position_embeddings == 66 and c.pad_token_id == tokenizer.pad_token_id
    assert report["objective"] == ("mlm_head" if family == "bert-mlm" else "tied_embedding_proxy")
    assert report["layers"] == [1, 2] and report["pooler"] is pooler and report["lines_used"] == 16
    counted = loaded if pooler else load(out)
    assert report["parameters"]["after"] == counted.num_parameters() < report["parameters"]["before"]
    assert (out / "tokenizer.json").is_file() and list(out.parent.glob(".out-*")) == []
    with torch.inference_mode():
        assert loaded(**inputs(tokenizer, da_lines)).last_hidden_state.shape[-1] == 24


def test_bad_inputs_give_one_clear_error_and_no_folder(bert4, corpus, tmp_path, capsys, monkeypatch):
    (tmp_path / "empty.txt").write_text("\n  \n")
    DistilBertConfig().save_pretrained(tmp_path / "distil")
    base = [str(bert4), "--corpus", str(corpus)]
    cases = [
        (["--num_heads", "16"], "--num_heads 16 exceeds the source's 4 heads"),
        (["--hidden_size", "30"], "--hidden_size 30 is not divisible by the source's 4 heads (set --num_heads)"),
        (["--hidden_size", "30", "--num_heads", "4"], "--hidden_size 30 is not divisible by --num_heads 4"),
        (["--num_heads", "2"], "--num_heads 2 with hidden size 48 gives heads of 24 dims, more than the source's 12"),
        (["--intermediate_size", "200"], "--intermediate_size 200 exceeds the source's 96"),
        (["--layers", "every-0"], "--layers every-0: K must be at least 1"),
        (["--layers", "0,4"], "--layers 0,4: layer 4 is out of range for the source's 4 layers (0-3)"),
        (["--hidden_init", "pca"], "must be one of ['slice', 'svd']"),
        (["--corpus", str(tmp_path / "empty.txt")], "empty.txt: the file has no non-blank lines"),
    ]
    for extra, message in cases:
        argv = base + extra if "--corpus" not in extra else [str(bert4), *extra]
        assert cli_main(["prune", *argv, "--output_dir", str(tmp_path / "out")]) == 2
        assert message in capsys.readouterr().err
    assert cli_main(["prune", *base, "--output_dir", str(bert4)]) == 2
    assert "would replace the source model" in capsys.readouterr().err and (bert4 / "config.json").is_file()
    distil = [str(tmp_path / "distil"), "--corpus", str(corpus), "--output_dir", str(tmp_path / "out")]
    assert cli_main(["prune", *distil]) == 2
    assert "model_type 'distilbert' cannot be pruned; supported: bert, roberta, xlm-roberta" in capsys.readouterr().err

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("time_hub.compress.prune.write_json", fail)  # fails after the weights were written
    argv = [*base, "--intermediate_size", "64", "--importance_lines", "8", "--output_dir", str(tmp_path / "out")]
    assert cli_main(["prune", *argv]) == 2
    assert "disk full" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["distil", "empty.txt"]  # nothing half-written


def test_real_teacher(teacher_dir, da_lines, tmp_path):
    """me5-small -> 4 layers (every third), 8 heads, 256 hidden, 1024 FFN: a stock BertModel that loads and runs."""
    corpus = tmp_path / "da64.txt"
    corpus.write_text("\n".join(da_lines[:64]) + "\n", encoding="utf-8")
    start = time.perf_counter()
    report = run(
        teacher_dir,
        corpus,
        tmp_path / "out",
        layers="every-3",
        num_heads=8,
        intermediate_size=1024,
        hidden_size=256,
        importance_lines=64,
        batch_size=16,
        max_seq_length=128,
    )
    seconds = time.perf_counter() - start
    model = load(tmp_path / "out")
    c = model.config
    assert (type(model).__name__, c.num_hidden_layers, c.num_attention_heads, c.hidden_size, c.intermediate_size) == (
        "BertModel",
        4,
        8,
        256,
        1024,
    )
    assert report["parameters"] == {"before": 39_539_712, "after": model.num_parameters()}
    assert report["layers"] == [2, 5, 8, 11] and report["objective"] == "tied_embedding_proxy"
    assert report["pooler"] is False and report["lines_used"] == 64, seconds
    from transformers import AutoTokenizer

    batch = AutoTokenizer.from_pretrained(tmp_path / "out")(da_lines[200:204], padding=True, return_tensors="pt")
    with torch.inference_mode():
        assert torch.isfinite(model(**batch).last_hidden_state).all()
