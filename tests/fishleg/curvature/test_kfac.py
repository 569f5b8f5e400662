"""K-FAC initialisation: sampled output gradients, the factors' definition, and Q after it
against the dense (F + γI)⁻¹."""

import copy

import pytest
import torch
from torch import nn

from fishleg import BernoulliLikelihood, CategoricalLikelihood, FishLeg, GaussianLikelihood, Likelihood
from fishleg.config import FishLegConfig
from fishleg.curvature.kfac import damped_inverse_factors, kronecker_factors
from fishleg.layers import adapter_for

from ..dense import dense_q, output_fisher
from ..test_optimizer import linear_regression_target

LIKELIHOODS = [GaussianLikelihood(sigma=0.7), BernoulliLikelihood(), CategoricalLikelihood()]


@pytest.mark.parametrize("likelihood", LIKELIHOODS, ids=lambda lik: type(lik).__name__)
def test_sampled_output_gradients_have_the_output_fisher_as_covariance(likelihood):
    outputs = torch.tensor([[0.3, -1.2, 2.0]])
    samples = likelihood.sample_output_gradient(outputs.expand(200_000, 3), torch.Generator().manual_seed(0))
    covariance = samples.T @ samples / len(samples)
    torch.testing.assert_close(covariance, output_fisher(likelihood, outputs)[0], atol=6e-3, rtol=0.03)


def test_categorical_samples_over_the_class_dimension_of_spatial_logits():
    outputs = torch.randn(2, 4, 3, 3)  # (batch, classes, height, width)
    r = CategoricalLikelihood().sample_output_gradient(outputs, torch.Generator().manual_seed(0))
    assert r.shape == outputs.shape
    torch.testing.assert_close(r.sum(dim=1), torch.zeros(2, 3, 3))  # p − onehot per pixel
    onehot = torch.softmax(outputs, 1) - r
    torch.testing.assert_close(onehot, onehot.round(), atol=1e-6, rtol=0)
    assert onehot.round().sum(dim=1).eq(1).all()


@pytest.mark.parametrize(
    "layer, x",
    [
        (nn.Linear(4, 3), torch.randn(5, 2, 4)),  # rows = batch × positions
        (nn.Conv2d(2, 3, 3, stride=2, padding=1), torch.randn(5, 2, 6, 6)),
        (nn.Conv2d(2, 3, 2, bias=False, dilation=2), torch.randn(5, 2, 6, 6)),
    ],
    ids=["linear", "conv", "conv-dilated-no-bias"],
)
def test_rows_are_what_the_block_gradient_is_made_of(layer, x):
    """Σ_rows g āᵀ of the adapter's rows is the block gradient [∇W | ∇b] of ⟨r, f(x)⟩: the
    rows are the layer's per-example gradient, which K-FAC factorises."""
    adapter = adapter_for(layer)
    out = layer(x)
    r = torch.randn_like(out)
    grads = torch.autograd.grad(out, adapter.params(layer), r)
    block = torch.cat([g.reshape(g.shape[0], -1) for g in grads], dim=1)
    g_rows, a_rows = adapter.output_rows(layer, r), adapter.input_rows(layer, x)
    torch.testing.assert_close(g_rows.T @ a_rows, block, rtol=1e-4, atol=1e-5)


def test_grouped_and_unregistered_rows_are_unknown():
    grouped = nn.Conv2d(4, 4, 3, groups=2)
    assert adapter_for(grouped).input_rows(grouped, torch.randn(1, 4, 5, 5)) is None
    conv1d = nn.Conv1d(2, 3, 3)
    assert adapter_for(conv1d).output_rows(conv1d, torch.randn(1, 3, 4)) is None


def test_kronecker_factors_follow_their_definition():
    """A = āᵀā/M from the layer's inputs; G = gᵀg/N from the gradients of ⟨r, f⟩ at its
    output, with the same sampled r."""
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    x = torch.randn(7, 3)
    likelihood = CategoricalLikelihood()
    layers = [(m, adapter_for(m)) for m in (model[0], model[2])]
    (g1, a1), (g2, a2) = kronecker_factors(model, likelihood, x, layers, torch.Generator().manual_seed(3))
    r = likelihood.sample_output_gradient(model(x), torch.Generator().manual_seed(3))
    x1 = torch.cat([x, torch.ones(7, 1)], dim=1)
    h = model[1](model[0](x))
    h1 = torch.cat([h, torch.ones(7, 1)], dim=1).detach()
    torch.testing.assert_close(a1, x1.T @ x1 / 7)
    torch.testing.assert_close(a2, h1.T @ h1 / 7)
    torch.testing.assert_close(g2, r.T @ r / 7)
    pre = model[0](x)
    (g_pre,) = torch.autograd.grad(model[2](torch.tanh(pre)), pre, r)
    torch.testing.assert_close(g1, g_pre.T @ g_pre / 7)
    assert all(p.grad is None for p in model.parameters())


def test_damped_inverse_factors_split_the_damping_by_the_factors_scales():
    g = torch.tensor([[2.0, 0.5], [0.5, 1.0]])
    a = torch.diag(torch.tensor([40.0, 10.0, 25.0]))
    left, right = damped_inverse_factors(g, a, damping=0.09)
    pi = (25.0 / 1.5) ** 0.5
    expected = torch.kron(torch.linalg.inv(g + 0.3 / pi * torch.eye(2)), torch.linalg.inv(a + 0.3 * pi * torch.eye(3)))
    torch.testing.assert_close(torch.kron(left @ left.T, right @ right.T), expected)
    torch.testing.assert_close(left, left.tril())
    torch.testing.assert_close(right, right.tril())
    torch.testing.assert_close(left.diagonal().mean(), right.diagonal().mean())  # balanced, as I starts them


@pytest.mark.parametrize("vanishing", ["g", "a"])
def test_a_vanishing_factor_leaves_the_damped_inverse_at_identity_over_gamma(vanishing):
    """A layer whose output gradients are all zero (seen on CURVES's saturated layers) has a zero
    Fisher block, so its damped inverse is I/γ; π is infinite there: in float32 it overflowed,
    G's share of the damping became zero and the Cholesky factorisation failed."""
    factors = {"g": torch.zeros(3, 3), "a": torch.diag(torch.tensor([5.7, 40.0, 1e3, 0.5]))}
    if vanishing == "a":
        factors = {"g": torch.diag(torch.tensor([5.7, 40.0, 1e3])), "a": torch.zeros(4, 4)}
    left, right = damped_inverse_factors(factors["g"], factors["a"], damping=1e-3)
    q = torch.kron(left.double() @ left.double().T, right.double() @ right.double().T)
    torch.testing.assert_close(q, torch.eye(12, dtype=torch.float64) / 1e-3, rtol=1e-6, atol=0)


@pytest.mark.parametrize("q_structure", ["kron", "kron_diag"])
def test_kfac_init_starts_q_near_the_damped_inverse_fisher(q_structure):
    """For a linear model under a Gaussian likelihood F = I ⊗ A exactly: after q_init="kfac",
    the first step's Q is much closer to (F + γI)⁻¹ than the identity it otherwise starts at,
    both plainly and in the aux loss's own metric ‖(F+γI)^½ Q (F+γI)^½ − I‖, and that step
    uses it. (Not exact: G is sampled, and the damping is split between the factors.)"""
    torch.manual_seed(0)
    x = torch.randn(512, 3) @ torch.tensor([[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 0.5]]) + 0.5
    y = torch.randn(512, 2)
    target = linear_regression_target(x, 0.01)
    eigenvalues, vectors = torch.linalg.eigh(torch.linalg.inv(target))
    root = vectors @ torch.diag(eigenvalues.sqrt()) @ vectors.T

    def first_step_errors(q_init: str) -> tuple[float, float]:
        model = nn.Linear(3, 2)
        opt = FishLeg(
            model, GaussianLikelihood(), x, damping=0.01, aux_batch_size=512, q_init=q_init,
            q_structure=q_structure, seed=1,
        )  # fmt: skip
        GaussianLikelihood().nll(model(x), y).backward()
        grads = [p.grad.clone() for p in model.parameters()]
        opt.step()
        assert opt.curvature.aux_step_count == 0
        for got, expected in zip([v for b in opt.curvature.blocks for v in b.qg_views], opt.apply_q(grads)):
            torch.testing.assert_close(got, expected)
        q = dense_q(opt.curvature.blocks[0].structure).detach()
        plain = torch.linalg.norm(q - target) / torch.linalg.norm(target)
        weighted = torch.linalg.norm(root @ q @ root - torch.eye(8)) / 8**0.5
        return float(plain), float(weighted)

    identity, kfac = first_step_errors("identity"), first_step_errors("kfac")
    assert kfac[0] < 0.5 * identity[0] and kfac[1] < 0.3 * identity[1], (identity, kfac)


def test_kfac_init_runs_once_and_is_checkpointed():
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3))
    x, y = torch.randn(32, 3), torch.randint(3, (32,))
    opt = FishLeg(model, CategoricalLikelihood(), x, q_init="kfac", aux_batch_size=16, damping=0.1)
    identity = [lam.detach().clone() for b in opt.curvature.blocks for lam in b.structure.params]
    CategoricalLikelihood().nll(model(x), y).backward()
    opt.step()
    started = [lam.detach().clone() for b in opt.curvature.blocks for lam in b.structure.params]
    assert not any(torch.equal(a, b) for a, b in zip(identity, started))
    restored = FishLeg(
        nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)), CategoricalLikelihood(), x, q_init="kfac"
    )
    restored.load_state_dict(opt.state_dict())
    for p in restored.model.parameters():
        p.grad = torch.zeros_like(p)
    restored.step()  # step 2 of a restored run: no second initialisation
    for lam, expected in zip([lam for b in restored.curvature.blocks for lam in b.structure.params], started):
        torch.testing.assert_close(lam.detach(), expected)


@pytest.mark.parametrize("q_structure", ["diag", "kron_sum"])
def test_kfac_init_needs_a_kronecker_structure(q_structure):
    with pytest.raises(
        ValueError, match=r"q_init 'kfac' needs a q_structure with a Kronecker form \(kron, kron_diag\)"
    ):
        FishLegConfig(q_init="kfac", q_structure=q_structure)


def test_a_likelihood_that_cannot_sample_says_so():
    class Custom(Likelihood):
        def nll(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            return (outputs - targets).abs().sum(1).mean()

        def fisher_product(self, outputs: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            return v

    with pytest.raises(NotImplementedError, match="Custom cannot sample.*q_init='identity'"):
        FishLeg(nn.Linear(3, 2), Custom(), torch.randn(4, 3), q_init="kfac").initialize_q(torch.randn(4, 3))


def test_kfac_every_restarts_q_at_a_fresh_estimate_and_clears_its_moments():
    """Every kfac_every steps, before that step's Q·g: each Kronecker block's Q is K-FAC's damped
    inverse estimated, at that moment's weights, on the aux batch drawn then, and its λ's Adam
    moments are zero; a block without a Kronecker form (the LayerNorm's diagonal Q) keeps both.
    A run restored from a checkpoint between restarts goes on exactly as the uninterrupted one."""
    torch.manual_seed(0)
    x, y = torch.randn(64, 3), torch.randint(3, (64,))

    def build() -> tuple[nn.Module, FishLeg]:
        torch.manual_seed(1)
        model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Tanh(), nn.Linear(4, 3))
        opt = FishLeg(
            model, CategoricalLikelihood(), x, q_init="kfac", kfac_every=3, update_aux_every=3, aux_batch_size=16,
            damping=0.1, aux_lr=0.05, lr=0.1, seed=0,
        )  # fmt: skip
        return model, opt

    def train(model: nn.Module, opt: FishLeg, steps: range) -> None:
        for step in steps:
            opt.zero_grad()
            CategoricalLikelihood().nll(model(x[8 * step : 8 * step + 8]), y[8 * step : 8 * step + 8]).backward()
            opt.step()

    model, opt = build()
    train(model, opt, range(3))  # steps 1-3: the K-FAC start, an aux update at step 3
    kron = [b for b in opt.curvature.blocks if b.layer is not None and b.structure.kronecker_init]
    diag = [b for b in opt.curvature.blocks if b not in kron]
    assert len(kron) == 2 and diag
    diag_before = [lam.detach().clone() for b in diag for lam in b.structure.params]
    seen = {}
    initialize_q = opt.curvature.initialize_q

    def recording(inputs: torch.Tensor) -> list:
        seen["inputs"], seen["rng"] = inputs.clone(), opt.curvature.probe_rng.get_state()
        seen["weights"] = [p.detach().clone() for p in model.parameters()]
        return initialize_q(inputs)

    opt.curvature.initialize_q = recording
    checkpoint = copy.deepcopy(opt.state_dict())
    train(model, opt, range(3, 4))  # step 4: the restart, no aux update
    assert "inputs" in seen

    at_restart = dict(zip([n for n, _ in model.named_parameters()], seen["weights"]))
    twin = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Tanh(), nn.Linear(4, 3))
    twin.load_state_dict(at_restart)
    layers = [(twin[0], adapter_for(twin[0])), (twin[3], adapter_for(twin[3]))]
    rng = torch.Generator().set_state(seen["rng"])
    for b, factors in zip(kron, kronecker_factors(twin, CategoricalLikelihood(), seen["inputs"], layers, rng)):
        left, right = damped_inverse_factors(*factors, damping=0.1)
        torch.testing.assert_close(dense_q(b.structure).detach(), torch.kron(left @ left.T, right @ right.T))
        for lam in b.structure.params:
            assert all(not m.any() for m in opt.curvature.aux_optimizer.state[lam].values())
    for lam, before in zip([lam for b in diag for lam in b.structure.params], diag_before):
        torch.testing.assert_close(lam.detach(), before)
        assert opt.curvature.aux_optimizer.state[lam]["exp_avg"].any()
    grads = [p.grad.clone() for p in opt.param_groups[0]["params"]]
    for got, expected in zip([v for b in opt.curvature.blocks for v in b.qg_views], opt.apply_q(grads)):
        torch.testing.assert_close(got, expected)  # step 4's Q·g used the restarted Q

    train(model, opt, range(4, 8))  # a second restart at step 7
    resumed_model, resumed = build()
    resumed_model.load_state_dict(at_restart)
    resumed.load_state_dict(checkpoint)
    train(resumed_model, resumed, range(3, 8))
    for got, expected in zip(resumed_model.parameters(), model.parameters()):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_kfac_every_needs_the_kfac_start():
    with pytest.raises(
        ValueError,
        match="kfac_every 10: an option of the K-FAC start, which this config leaves out; .* set q_init: kfac",
    ):
        FishLegConfig(kfac_every=10)


def test_without_the_aux_loop_q_stays_at_each_kfac_estimate():
    """learn_q=False with q_init 'kfac' (the K-FAC-only control): between two restarts Q is the
    estimate the last restart made, exactly, although aux data is given and λ updates would be
    due every step; no λ update ever runs, and the identity blocks (LayerNorm) stay at init_scale·I."""
    torch.manual_seed(0)
    x, y = torch.randn(64, 3), torch.randint(3, (64,))
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Tanh(), nn.Linear(4, 3))
    opt = FishLeg(
        model, CategoricalLikelihood(), x, q_init="kfac", kfac_every=3, update_aux_every=1, learn_q=False,
        aux_batch_size=16, damping=0.1, aux_lr=0.05, lr=0.1, seed=0,
    )  # fmt: skip
    estimates = []
    initialize_q = opt.curvature.initialize_q

    def recording(inputs: torch.Tensor) -> list:
        blocks = initialize_q(inputs)
        estimates.append([dense_q(b.structure).detach().clone() for b in opt.curvature.blocks])
        return blocks

    opt.curvature.initialize_q = recording
    for step in range(1, 9):
        opt.zero_grad()
        CategoricalLikelihood().nll(model(x[8 * step - 8 : 8 * step]), y[8 * step - 8 : 8 * step]).backward()
        opt.step()
        assert len(estimates) == 1 + (step - 1) // 3  # made at steps 1, 4, 7
        for b, q in zip(opt.curvature.blocks, estimates[-1]):
            torch.testing.assert_close(dense_q(b.structure).detach(), q, rtol=0, atol=0)
    assert opt.curvature.aux_step_count == 0 and opt.curvature.aux_optimizer.state == {}
    assert not torch.equal(estimates[0][0], estimates[-1][0])  # the estimate moved with the weights
    diag = [
        dense_q(b.structure).detach() for b in opt.curvature.blocks if b.layer is None or not b.structure.kronecker_init
    ]
    assert diag and all(torch.equal(q, torch.eye(len(q))) for q in diag)


def test_options_of_the_aux_loop_are_refused_without_it():
    with pytest.raises(
        ValueError, match="warmup_aux_steps 2, aux_lr_start 0.1: options of the aux loop, .* set learn_q: true"
    ):
        FishLegConfig(learn_q=False, warmup_aux_steps=2, aux_lr_start=0.1)
