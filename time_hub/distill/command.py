"""`time-hub distill`: recipe -> teacher, student, corpus -> `DistillationTrainer` -> checkpoints in output_dir.

Runs unchanged under `accelerate launch` / `torchrun` (the Trainer handles DDP; the teacher follows each process's
device). `--resume_from_checkpoint last` continues from the newest checkpoint in output_dir.
"""

from __future__ import annotations

import logging
from pathlib import Path

from transformers import AutoTokenizer, DataCollatorWithPadding, TrainerCallback, set_seed
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from time_hub.arguments import parse_command
from time_hub.distill.config import DistillationConfig
from time_hub.distill.data import CorpusArguments, build_corpus
from time_hub.distill.student import StudentArguments, build_student, count_parameters, prune_student
from time_hub.distill.trainer import DistillationTrainer, load_teacher
from time_hub.encoder import load_encoder
from time_hub.run_dir import RunConfig, RunDir, mark_complete

logger = logging.getLogger(__name__)
DATACLASSES = (DistillationConfig, StudentArguments, CorpusArguments)


def distill(
    args: DistillationConfig,
    student_args: StudentArguments,
    corpus_args: CorpusArguments,
    recipe: dict | None = None,
    callbacks: list[TrainerCallback] | None = None,
) -> DistillationTrainer:
    """Build everything, train, save the final student to `args.output_dir`, and return the trainer."""
    set_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(
        args.teacher_name_or_path, trust_remote_code=args.teacher_trust_remote_code
    )
    train, heldout = build_corpus(corpus_args, tokenizer)  # unusable text is refused before any model loads
    teacher = load_teacher(args.teacher_name_or_path, args.teacher_dtype, args.teacher_trust_remote_code)
    if student_args.student_name_or_path:
        student = load_encoder(student_args.student_name_or_path)
    elif student_args.student_init == "prune":
        if not corpus_args.train_files:
            raise ValueError("student_init: prune needs train_files (local text for its importance pass)")
        student = prune_student(
            args.teacher_name_or_path,
            teacher.config.num_hidden_layers,
            student_args,
            corpus_args.train_files[0],
            str(RunDir(args.output_dir).student_init),
        )
    else:
        student = build_student(
            teacher.config, tokenizer, student_args.student_shape, student_args.student_init, teacher, args.seed
        )
    trainer = DistillationTrainer(
        student,
        args,
        teacher_model=teacher,
        train_dataset=train,
        eval_dataset=heldout,
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8),
        callbacks=callbacks,
    )
    if args.should_save:
        RunConfig(
            recipe=recipe or {},
            distillation=trainer.distillation_settings,
            student_parameters=count_parameters(student),
            train_sequences=len(train) if hasattr(train, "__len__") else None,
            heldout_sequences=len(heldout),
        ).save(args.output_dir)
    if args.max_steps == 0:
        # No distillation step: the initialised student is the result (e.g. the teacher's bottom layers, which keep
        # more of it than any distillation we measured: benchmarks/results/protocol/). It is saved as checkpoint-0 too,
        # so `select` scores it against a random-init student like any run.
        logger.info("max_steps: 0: saving the initialised student without distillation steps")
        checkpoint = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-0"
        trainer.save_model(str(checkpoint))
        if args.should_save:
            mark_complete(checkpoint, 0)
        trainer.save_model()
        return trainer
    resume = args.resume_from_checkpoint
    if resume in ("last", "true", "True"):
        last = RunDir(args.output_dir).last_complete_checkpoint(remove_incomplete=args.should_save)
        resume = str(last) if last else None
        logger.info("resuming from %s", resume or "scratch (no complete checkpoint found)")
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model()
    trainer.save_state()
    return trainer


def main(argv: list[str]) -> int:
    parsed = parse_command(
        "time-hub distill", "Distill a student from a frozen teacher (MiniLMv2).", DATACLASSES, argv
    )
    if parsed is None:
        return 0
    (args, student_args, corpus_args), recipe = parsed
    trainer = distill(args, student_args, corpus_args, recipe)
    print(f"student saved to {trainer.args.output_dir} after {trainer.state.global_step} steps")
    return 0
