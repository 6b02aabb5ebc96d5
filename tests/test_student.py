import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoTokenizer, BertModel, XLMRobertaConfig, XLMRobertaModel

from time_hub.distill.student import (
    SHAPES,
    StudentArguments,
    StudentShape,
    build_student,
    count_parameters,
    parse_shape,
    student_config,
)

XLMR_LARGE = dict(
    vocab_size=250002,
    hidden_size=1024,
    num_hidden_layers=24,
    num_attention_heads=16,
    intermediate_size=4096,
    max_position_embeddings=514,
    type_vocab_size=1,
    pad_token_id=1,
    bos_token_id=0,
    eos_token_id=2,
)


@pytest.fixture(scope="module")
def xlmr_tokenizer(shared):
    return AutoTokenizer.from_pretrained(shared / "tokenizers" / "xlm-roberta")


@pytest.mark.parametrize("size, expected_millions", [("m", 235.5), ("xs", 103.4)])
def test_paper_parameter_counts_for_an_xlmr_large_teacher(xlmr_tokenizer, size, expected_millions):
    config = student_config(XLMRobertaConfig(**XLMR_LARGE), xlmr_tokenizer, size)
    with torch.device("meta"):  # counts only: no 1 GB of random weights
        model = AutoModel.from_config(config)
    assert isinstance(model, XLMRobertaModel)
    assert round(count_parameters(model) / 1e6, 1) == expected_millions
    assert config.max_position_embeddings == 514 and config.vocab_size == 250002


def test_shapes_and_explicit_specs():
    assert SHAPES["m"] == StudentShape(6, 768, 12) and SHAPES["m"].ffn_size == 3072
    assert SHAPES["s"] == StudentShape(6, 384, 12) and SHAPES["xs"] == StudentShape(4, 384, 12)
    assert parse_shape("L4-H256-A4") == StudentShape(4, 256, 4)
    assert parse_shape("L2-H64-A2-I100").ffn_size == 100
    for bad in ("xl", "L4-H250-A4", "4x256"):
        with pytest.raises(ValueError):
            parse_shape(bad)
    with pytest.raises(ValueError, match="student_init"):
        StudentArguments(student_init="copy")


def test_student_of_the_real_teacher_shares_tokenizer_ids(teacher_dir, tokenizer):
    teacher_config = AutoConfig.from_pretrained(teacher_dir)
    student = build_student(teacher_config, tokenizer, "L2-H64-A2", seed=0)
    assert isinstance(student, BertModel)
    config = student.config
    assert config.vocab_size == len(tokenizer) == 47000
    assert (config.pad_token_id, config.bos_token_id, config.eos_token_id) == (1, 0, 2)
    assert config.pad_token_id == tokenizer.pad_token_id
    assert student.embeddings.word_embeddings.padding_idx == tokenizer.pad_token_id


def test_every_special_token_embedding_except_pad_gets_gradient(teacher_dir, tokenizer):
    student = build_student(AutoConfig.from_pretrained(teacher_dir), tokenizer, "L2-H64-A2", seed=0)
    batch = tokenizer(["Hej med dig <mask>", "Kort"], padding=True, return_tensors="pt")
    unk = torch.full_like(batch["input_ids"][:, :1], tokenizer.unk_token_id)
    ids = torch.cat([batch["input_ids"], unk], dim=1)
    mask = torch.cat([batch["attention_mask"], torch.ones_like(unk)], dim=1)
    student(input_ids=ids, attention_mask=mask).last_hidden_state.pow(2).sum().backward()
    grad = student.embeddings.word_embeddings.weight.grad
    for token in ("bos_token", "eos_token", "unk_token", "mask_token"):
        token_id = getattr(tokenizer, f"{token}_id")
        assert token_id in ids and grad[token_id].abs().sum() > 0, token
    assert grad[tokenizer.pad_token_id].abs().sum() == 0  # padding_idx: pad stays fixed, as it should


def test_teacher_init_copies_embeddings_and_evenly_spaced_layers(teacher_dir, tokenizer):
    teacher = AutoModel.from_pretrained(teacher_dir, add_pooling_layer=False, dtype=torch.float32)
    student = build_student(teacher.config, tokenizer, "L3-H384-A12", init="teacher", teacher=teacher, seed=0)
    torch.testing.assert_close(student.embeddings.word_embeddings.weight, teacher.embeddings.word_embeddings.weight)
    for s, t in ((0, 3), (1, 7), (2, 11)):
        torch.testing.assert_close(
            student.encoder.layer[s].attention.self.query.weight, teacher.encoder.layer[t].attention.self.query.weight
        )


def test_saved_student_reloads_with_stock_auto_classes(tmp_path, teacher_dir, tokenizer):
    student = build_student(AutoConfig.from_pretrained(teacher_dir), tokenizer, "L2-H64-A2", seed=0)
    student.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    reloaded = AutoModel.from_pretrained(tmp_path)
    batch = AutoTokenizer.from_pretrained(tmp_path)(["Det regner i København."], return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(
            reloaded.eval()(**batch).last_hidden_state, student.eval()(**batch).last_hidden_state
        )
