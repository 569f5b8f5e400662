"""fishleg.huggingface: a transformers causal LM's Fisher products, under eager attention,
equal the dense Jᵀ H J built from autograd Jacobians (Conv1D layers as Kronecker blocks); a
model with fused attention (sdpa), whose kernels have no forward-mode derivative, is refused
with the fix before training."""

import pytest
import torch

from fishleg import CategoricalLikelihood, FishLeg
from fishleg.config import FishLegConfig
from fishleg.curvature.fisher import fisher_vector_product

from .dense import dense_fisher

transformers = pytest.importorskip("transformers")
from fishleg.huggingface import CausalLMLogits, trainer_optimizer  # noqa: E402


def tiny_gpt2(attention: str) -> torch.nn.Module:
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=7, n_positions=6, n_embd=4, n_layer=1, n_head=2, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0
    )
    return transformers.GPT2LMHeadModel._from_config(config, attn_implementation=attention).eval()


def test_fisher_products_of_a_gpt2_under_eager_attention_match_the_dense_fisher():
    model = CausalLMLogits(tiny_gpt2("eager"))
    opt = FishLeg(model, "categorical", aux_data="manual", q_structure="kron")
    assert {type(b.structure).__name__ for b in opt.curvature.blocks} >= {"KronQ"}  # the Conv1D projections
    x = torch.randint(0, 7, (2, 5))
    dense = dense_fisher(model, CategoricalLikelihood(), x, opt.curvature.blocks)
    v = [torch.randn(b.structure.shape) for b in opt.curvature.blocks]
    params = {n: p.detach() for b in opt.curvature.blocks for n, p in zip(b.names, b.params)}
    tangents = {n: t for b, vb in zip(opt.curvature.blocks, v) for n, t in zip(b.names, b.split(vb))}
    fv, _ = fisher_vector_product(model, CategoricalLikelihood(), x, params, tangents)
    got = torch.cat([b.join([fv[n] for n in b.names]).flatten() for b in opt.curvature.blocks])
    torch.testing.assert_close(got, dense @ torch.cat([t.flatten() for t in v]), rtol=1e-4, atol=1e-6)


def test_a_model_with_fused_attention_is_refused_with_the_fix():
    model, config, tokens = tiny_gpt2("sdpa"), FishLegConfig(q_structure="kron"), torch.randint(0, 7, (8, 5))
    with pytest.raises(ValueError, match=r"attn_implementation='sdpa'.*no forward-mode derivative.*'eager'"):
        trainer_optimizer(model, config, aux_data=tokens)
    model.set_attn_implementation("eager")
    assert isinstance(trainer_optimizer(model, config, aux_data=tokens), FishLeg)
