"""A tuned FishLeg config in the Hugging Face Trainer: a small GPT-2, built from a config (no
download), learns the character-level text of the transformer example.

    python -m examples.huggingface.train --config best_config.yaml --output hf-runs/gpt2
    python -m examples.huggingface.train --config best_config.yaml --output hf-runs/gpt2 --resume

`fishleg.huggingface.trainer_optimizer` builds FishLeg on the model's logits (GPT-2's Conv1D
projections get the configured Q) with aux batches drawn from the train set through the
Trainer's own collator; the Trainer saves FishLeg's state in each checkpoint's optimizer.pt
and `--resume` (resume_from_checkpoint) restores it."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments, default_data_collator

import fishleg
from examples.charlm.data import VOCAB, load_text, split_text
from fishleg.huggingface import trainer_optimizer

__all__ = ["TokenWindows", "main", "tiny_gpt2"]


class TokenWindows(Dataset):
    """Non-overlapping windows of `context` characters as a causal LM's examples: the Trainer's
    model shifts `labels` by one itself."""

    def __init__(self, codes: Tensor, context: int) -> None:
        self.codes = codes
        self.context = context

    def __len__(self) -> int:
        return len(self.codes) // self.context

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        window = self.codes[i * self.context : (i + 1) * self.context]
        return {"input_ids": window, "labels": window}


def tiny_gpt2(context: int, width: int, layers: int, seed: int) -> GPT2LMHeadModel:
    """GPT-2 with `layers` blocks of `width`, eager attention (FishLeg's Fisher products run
    forward-mode autodiff, which fused attention kernels lack) and no dropout."""
    config = GPT2Config(
        vocab_size=VOCAB, n_positions=context, n_embd=width, n_layer=layers, n_head=4,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, attn_implementation="eager", bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    torch.manual_seed(seed)
    return GPT2LMHeadModel(config)


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Train (or resume) and evaluate; returns the Trainer's evaluation metrics."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="a best_config.yaml (or any FishLeg config file)")
    parser.add_argument("--output", type=Path, default=Path("hf-runs/gpt2"), help="checkpoints and logs")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--save-steps", type=int, default=30)
    parser.add_argument("--num-chars", type=int, default=100_000)
    parser.add_argument("--context", type=int, default=32)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="resume from the last checkpoint in --output")
    args = parser.parse_args(argv)
    train_codes, val_codes, _test = split_text(load_text(args.num_chars), 0.05, 0.05)
    train, val = TokenWindows(train_codes, args.context), TokenWindows(val_codes, args.context)
    model = tiny_gpt2(args.context, args.width, args.layers, args.seed)
    aux_loader = DataLoader(train, collate_fn=default_data_collator)
    optimizer = trainer_optimizer(
        model,
        fishleg.load_config(args.config),
        fishleg.aux_from_loader(aux_loader, inputs="input_ids"),
        seed=args.seed,
    )
    training = TrainingArguments(
        output_dir=str(args.output),
        max_steps=args.steps,
        per_device_train_batch_size=args.batch_size,
        lr_scheduler_type="constant",  # the tuned lr, as the sweep ran it
        max_grad_norm=0.0,  # no clipping: the sweep tuned the unclipped optimizer
        save_steps=args.save_steps,
        logging_steps=10,
        seed=args.seed,
        use_cpu=True,
        report_to=[],
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model,
        args=training,
        train_dataset=train,
        eval_dataset=val,
        data_collator=default_data_collator,
        optimizers=(optimizer, None),
    )
    trainer.train(resume_from_checkpoint=args.resume or None)
    metrics = trainer.evaluate()
    print(f"eval_loss {metrics['eval_loss']:.4f} after {trainer.state.global_step} steps; checkpoints in {args.output}")
    return metrics


if __name__ == "__main__":
    main()
