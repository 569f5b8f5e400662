"""fishleg.huggingface: GPT-2's Conv1D gets Linear's Q, a causal LM's logits view, and the
Trainer's optimizer refusing what needs a closure (the Trainer itself: tests/examples)."""

import pytest
import torch
from torch import nn

pytest.importorskip("transformers")
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402
from transformers.pytorch_utils import Conv1D  # noqa: E402

from fishleg import FishLeg, FishLegConfig  # noqa: E402
from fishleg.huggingface import CausalLMLogits, trainer_optimizer  # noqa: E402
from fishleg.structures import KronQ  # noqa: E402


def _train(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> FishLeg:
    opt = FishLeg(model, "categorical", aux_data=x, q_init="kfac", update_aux_every=1, aux_batch_size=8, seed=0)
    for _ in range(3):
        opt.zero_grad()
        opt.likelihood.nll(model(x), y).backward()
        opt.step()
    return opt


def test_conv1d_steps_exactly_as_the_linear_layer_with_its_weight_transposed():
    conv = Conv1D(3, 5)  # y = x W + b, W (5, 3)
    nn.init.normal_(conv.bias)
    linear = nn.Linear(5, 3)
    with torch.no_grad():
        linear.weight.copy_(conv.weight.T)
        linear.bias.copy_(conv.bias)
    x, y = torch.randn(16, 5), torch.randint(3, (16,))
    start = linear.weight.detach().clone()
    conv_opt = _train(conv, x, y)
    _train(linear, x, y)
    assert isinstance(conv_opt.blocks[0].structure, KronQ) and len(conv_opt.blocks) == 1
    torch.testing.assert_close(conv.weight.T, linear.weight, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(conv.bias, linear.bias, rtol=1e-5, atol=1e-6)
    assert (linear.weight - start).abs().max() > 1e-3


def _gpt2() -> GPT2LMHeadModel:
    config = GPT2Config(vocab_size=11, n_positions=6, n_embd=8, n_layer=1, n_head=2, attn_implementation="eager")
    return GPT2LMHeadModel(config)


def test_causal_lm_logits_are_one_row_per_position():
    model = _gpt2().eval()
    ids = torch.randint(11, (3, 6))
    logits = CausalLMLogits(model)(ids)
    assert logits.shape == (18, 11)
    torch.testing.assert_close(logits, model(input_ids=ids).logits.reshape(18, 11))


def test_trainer_optimizer_puts_gpt2_projections_in_kronecker_blocks_and_the_tied_head_once():
    model = _gpt2()
    ids = torch.randint(11, (20, 6))
    opt = trainer_optimizer(model, FishLegConfig(q_structure="kron", aux_batch_size=4), ids, seed=0)
    kron = sorted(n for b in opt.blocks if isinstance(b.structure, KronQ) for n in b.names)
    assert [n for n in kron if n.endswith("weight")] == [  # the head's weight is the embedding's, by name
        *(f"model.transformer.h.0.{n}.weight" for n in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")),
        "model.transformer.wte.weight",
    ]
    params = [p for g in opt.param_groups for p in g["params"]]
    assert len(params) == len({id(p) for p in params}) == len(list(model.parameters()))


def test_trainer_optimizer_refuses_adaptive_damping_before_training():
    with pytest.raises(ValueError, match="adaptive_damping: the Hugging Face Trainer calls optimizer.step.. without"):
        trainer_optimizer(_gpt2(), FishLegConfig(adaptive_damping=True), torch.zeros(4, 6, dtype=torch.long))
