"""apply_q against the dense Q(λ) built from the factors, for every structure and layer type."""

import pytest
import torch
from torch import nn

from fishleg import FishLeg, GaussianLikelihood
from fishleg.structures import STRUCTURES, QSpec, build_structure
from fishleg.structures.kron import MIN_BLOCK, gram, sym_times_tril, times_lower, tril_gram

from .dense import dense_q

STRUCTURE_NAMES = ["diag", "kron", "kron_diag", "kron_sum"]


def randomize(opt: FishLeg) -> None:
    with torch.no_grad():
        for b in opt.curvature.blocks:
            for lam in b.structure.params:
                lam.copy_(torch.randn_like(lam))
            b.structure.refresh()


@pytest.mark.parametrize("name", STRUCTURE_NAMES)
@pytest.mark.parametrize(
    "layer", [nn.Linear(4, 3), nn.Conv2d(2, 3, kernel_size=2), nn.Linear(5, 2, bias=False)], ids=repr
)
def test_apply_q_matches_dense(name, layer):
    rank = {"kron_sum_rank": 3} if name == "kron_sum" else {}
    opt = FishLeg(layer, GaussianLikelihood(), aux_data="manual", q_structure=name, **rank)
    randomize(opt)
    (block,) = opt.curvature.blocks
    vectors = [torch.randn_like(p) for p in block.params]
    got = opt.apply_q(vectors)
    u = block.join(vectors).flatten()
    expected = (dense_q(block.structure) @ u).reshape(block.structure.shape)
    for g, e in zip(got, block.split(expected)):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", STRUCTURE_NAMES)
def test_differentiable_apply_equals_cached(name):
    s = build_structure(name, (3, 4), QSpec(rank=2), torch.device("cpu"))
    with torch.no_grad():
        for lam in s.params:
            lam.copy_(torch.randn_like(lam))
    s.refresh()
    u = torch.randn(3, 4)
    torch.testing.assert_close(s.apply(u).detach(), s.apply_cached(u, torch.empty(3, 4)), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", STRUCTURE_NAMES)
def test_init_is_scaled_identity(name):
    s = build_structure(name, (3, 4), QSpec(init_scale=0.3, rank=3), torch.device("cpu"))
    torch.testing.assert_close(dense_q(s).detach(), 0.3 * torch.eye(12), atol=1e-5, rtol=1e-5)


def test_norm_layers_and_unknown_parameters_get_diag():
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Embedding(5, 4))
    opt = FishLeg(model, GaussianLikelihood(), aux_data="manual", q_structure="kron")
    kinds = [type(b.structure).__name__ for b in opt.curvature.blocks]
    assert kinds == ["KronQ", "DiagQ", "DiagQ", "DiagQ"]
    assert opt.curvature.blocks[0].structure.shape == (4, 4)


def test_registry_lists_builtins():
    assert set(STRUCTURE_NAMES) <= set(STRUCTURES)


@pytest.mark.parametrize("rows", [1, 2, 5, 8])
def test_gram_equals_plain_product(rows):
    x = torch.randn(rows, 6)
    torch.testing.assert_close(gram(x, torch.full((rows, rows), float("nan"))), x @ x.T)


# sizes on both sides of MIN_BLOCK, so the triangular products' halving runs, twice at the last
TRIANGULAR_SIZES = [1, 5, MIN_BLOCK + 3, 2 * MIN_BLOCK + 45]


@pytest.mark.parametrize("size", TRIANGULAR_SIZES)
def test_tril_gram_equals_plain_product(size):
    lower = torch.randn(size, size).tril()
    got = tril_gram(lower, torch.full((size, size), float("nan")))
    torch.testing.assert_close(got, lower @ lower.T, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("size", TRIANGULAR_SIZES)
def test_times_lower_equals_plain_product(size):
    x, lower = torch.randn(7, size), torch.randn(size, size).tril()
    got = times_lower(x, lower, torch.full((7, size), float("nan")))
    torch.testing.assert_close(got, x @ lower, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("size", TRIANGULAR_SIZES)
def test_sym_times_tril_equals_plain_product(size):
    s, lower = torch.randn(size, size), torch.randn(size, size).tril()
    expected = ((s + s.T) @ lower).tril()
    got = sym_times_tril(s.clone(), lower, torch.empty(size, size), torch.full((size, size), float("nan")))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_kron_refresh_makes_factors_lower_triangular():
    """λ from outside (a checkpoint) may be full; Q is defined by their lower triangles."""
    s = build_structure("kron", (4, 3), QSpec(), torch.device("cpu"))
    full = [torch.randn_like(lam) for lam in s.params]
    with torch.no_grad():
        for lam, f in zip(s.params, full):
            lam.copy_(f)
    s.refresh()
    for lam, f in zip(s.params, full):
        torch.testing.assert_close(lam.detach(), f.tril())


@pytest.mark.parametrize(
    "shape", [(5, 3), (3, 5), (MIN_BLOCK + 7, 6)], ids=["keeps_left", "keeps_right", "triangular_halves"]
)
def test_kron_lambda_grad_reuses_the_kept_product_only_while_valid(shape):
    """After apply_cached(u) the λ gradient may reuse half of that product; once u or λ
    changes it must not. Reference: autograd through the differentiable `apply`."""
    s = build_structure("kron", shape, QSpec(), torch.device("cpu"))
    with torch.no_grad():
        for lam in s.params:
            lam.copy_(torch.randn_like(lam))
    s.refresh()

    def reference(u, r):
        with torch.enable_grad():
            return torch.autograd.grad((s.apply(u) * r).sum(), s.params)

    def check(u, r):
        for g, e in zip(s.lambda_grad(u, r), reference(u, r)):
            torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-6 * e.abs().max().item())

    u, r = torch.randn(shape), torch.randn(shape)
    s.apply_cached(u, torch.empty(shape))
    check(u, r)
    u.mul_(-2.0).add_(1.0)  # same tensor, new values
    check(u, r)
    s.apply_cached(u, torch.empty(shape))
    with torch.no_grad():
        s.params[0].add_(0.5)
    s.refresh()  # λ changed since the product was kept
    check(u, r)


@pytest.mark.parametrize("name", STRUCTURE_NAMES)
def test_apply_q_works_in_inference_mode(name):
    opt = FishLeg(nn.Linear(4, 3), GaussianLikelihood(), aux_data="manual", q_structure=name)
    randomize(opt)
    vectors = [torch.randn(3, 4), torch.randn(3)]
    expected = opt.apply_q(vectors)
    with torch.inference_mode():
        got = opt.apply_q(vectors)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e)
