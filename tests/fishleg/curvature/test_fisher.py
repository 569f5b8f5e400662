"""Exact Fisher-vector products against the dense Jᵀ H J built from autograd Jacobians."""

import pytest
import torch
from torch import nn

from fishleg import BernoulliLikelihood, CategoricalLikelihood, FishLeg, GaussianLikelihood
from fishleg.curvature.fisher import fisher_gram, fisher_quadratic_form, fisher_vector_product

from ..dense import dense_fisher

LIKELIHOODS = [GaussianLikelihood(sigma=0.7), BernoulliLikelihood(), CategoricalLikelihood()]


def tiny_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))


@pytest.mark.parametrize("likelihood", LIKELIHOODS, ids=lambda lik: type(lik).__name__)
def test_fvp_quadratic_form_and_gram_match_dense_fisher(likelihood):
    model = tiny_mlp()
    x = torch.randn(6, 4)
    opt = FishLeg(model, likelihood, aux_data="manual")
    dense = dense_fisher(model, likelihood, x, opt.curvature.blocks)
    blocks_v = [torch.randn(b.structure.shape) for b in opt.curvature.blocks]
    params = {n: p.detach() for b in opt.curvature.blocks for n, p in zip(b.names, b.params)}
    tangents = {n: t for b, v in zip(opt.curvature.blocks, blocks_v) for n, t in zip(b.names, b.split(v))}
    fv, _ = fisher_vector_product(model, likelihood, x, params, tangents)
    got = torch.cat([b.join([fv[n] for n in b.names]).flatten() for b in opt.curvature.blocks])
    flat = torch.cat([v.flatten() for v in blocks_v])
    torch.testing.assert_close(got, dense @ flat, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(fisher_quadratic_form(model, likelihood, x, params, tangents), flat @ dense @ flat)
    other = {n: torch.randn_like(p) for n, p in params.items()}
    other_flat = torch.cat([b.join([other[n] for n in b.names]).flatten() for b in opt.curvature.blocks])
    basis = torch.stack([flat, other_flat])
    torch.testing.assert_close(fisher_gram(model, likelihood, x, params, [tangents, other]), basis @ dense @ basis.T)


@pytest.mark.parametrize("likelihood", LIKELIHOODS, ids=lambda lik: type(lik).__name__)
def test_fisher_is_the_gauss_newton_of_the_loss_when_outputs_flatten_positions_into_rows(likelihood):
    # 2 sequences of 3 positions → 6 output rows, as a language model's logits; the loss
    # averages over the 6 rows, so must F (the Hessian of the NLL in the outputs, with its 1/6).
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3), nn.Flatten(0, 1))
    x = torch.randn(2, 3, 4)
    y = torch.randint(0, 3, (6,)) if isinstance(likelihood, CategoricalLikelihood) else torch.rand(6, 3)
    opt = FishLeg(model, likelihood, aux_data="manual")
    params = {n: p.detach() for b in opt.curvature.blocks for n, p in zip(b.names, b.params)}
    tangents = {n: torch.randn_like(p) for n, p in params.items()}
    fv, out = fisher_vector_product(model, likelihood, x, params, tangents)

    def outputs(p):
        return torch.func.functional_call(model, p, (x,))

    _, jv = torch.func.jvp(outputs, (params,), (tangents,))
    _, hjv = torch.autograd.functional.hvp(lambda o: likelihood.nll(o, y), out.detach(), jv)
    _, pullback = torch.func.vjp(outputs, params)
    (expected,) = pullback(hjv)
    for name in params:
        torch.testing.assert_close(fv[name], expected[name], rtol=1e-4, atol=1e-6)


def test_fisher_is_psd_and_symmetric():
    model = tiny_mlp()
    opt = FishLeg(model, CategoricalLikelihood(), aux_data="manual")
    dense = dense_fisher(model, CategoricalLikelihood(), torch.randn(8, 4), opt.curvature.blocks)
    torch.testing.assert_close(dense, dense.T, atol=1e-6, rtol=1e-5)
    assert torch.linalg.eigvalsh(dense).min() > -1e-6


def test_fvp_leaves_batchnorm_and_rng_untouched():
    model = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.Dropout(0.5), nn.Linear(5, 3))
    before = {n: b.clone() for n, b in model.named_buffers()}
    params = {n: p.detach() for n, p in model.named_parameters()}
    v = {n: torch.randn_like(p) for n, p in params.items()}
    w = {n: torch.randn_like(p) for n, p in params.items()}
    x = torch.randn(8, 4)
    rng = torch.get_rng_state()
    fv, _ = fisher_vector_product(model, CategoricalLikelihood(), x, params, v)
    for n, b in model.named_buffers():
        assert torch.equal(b, before[n]), n
    assert torch.equal(torch.get_rng_state(), rng)
    # one dropout mask for the jvp and the vjp pass, so F stays symmetric: <w, Fv> = <v, Fw>
    fw, _ = fisher_vector_product(model, CategoricalLikelihood(), x, params, w)
    w_fv = sum((w[n] * fv[n]).sum() for n in params)
    v_fw = sum((v[n] * fw[n]).sum() for n in params)
    torch.testing.assert_close(w_fv, v_fw, rtol=1e-4, atol=1e-6)
    # dropout masks agree between the jvp and vjp passes: F v is then still symmetric in v
