"""FishLeg's maths against dense references, closed-form cases and torch.optim.SGD."""

import io

import pytest
import torch
from torch import nn

from fishleg import CategoricalLikelihood, FishLeg, GaussianLikelihood
from fishleg.step.rules import minimise_quadratic
from fishleg.structures.base import ALIGN_FROM, ROW_ALIGN

from .dense import dense_fisher, dense_q
from .test_structures import STRUCTURE_NAMES, randomize


def tiny_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3))


@pytest.mark.parametrize("scale_free", [False, True], ids=["fitted-scale", "scale-free"])
@pytest.mark.parametrize("precondition", [False, True], ids=["plain", "preconditioned"])
@pytest.mark.parametrize("name", STRUCTURE_NAMES)
def test_aux_gradient_matches_dense_autograd(name, precondition, scale_free):
    """∂/∂λ of A = ½uᵀQ(F+γI)Qu − uᵀQu with Q and F dense, which is ∂⟨Q(λ)u, sg(r)⟩/∂λ with
    r = (F+γI)Qu − u; with `precondition_aux`, ∂⟨Q(λ)u, sg(Q r)⟩/∂λ. `scale_free_aux`: the same
    for A at Q's best multiple, A_s = min_c A(cQ) = −(uᵀQu)²/(2uᵀQ(F+γI)Qu), with r = ∂A_s/∂(Qu)."""
    model, likelihood, damping = tiny_mlp(), CategoricalLikelihood(), 0.3
    opt = FishLeg(
        model,
        likelihood,
        aux_data="manual",
        q_structure=name,
        damping=damping,
        normalize_aux=False,
        precondition_aux=precondition,
        scale_free_aux=scale_free,
        graft="adam" if scale_free else "none",
    )
    randomize(opt)
    x = torch.randn(7, 3)
    probes = [torch.randn(b.structure.shape) for b in opt.curvature.blocks]
    grads, aux_loss = opt.curvature.aux_gradients(opt.curvature.blocks, x, probes)

    fisher = dense_fisher(model, likelihood, x, opt.curvature.blocks)
    lambdas = [[lam.detach().clone().requires_grad_() for lam in b.structure.params] for b in opt.curvature.blocks]
    q = torch.block_diag(*[dense_q(b.structure, lams) for b, lams in zip(opt.curvature.blocks, lambdas)])
    u = torch.cat([p.flatten() for p in probes])
    qu = q @ u
    curvature = fisher + damping * torch.eye(len(u))
    if scale_free:
        expected_loss = -((u @ qu) ** 2) / (2 * qu @ curvature @ qu)
    else:
        expected_loss = 0.5 * qu @ curvature @ qu - u @ qu
    residual = torch.autograd.grad(expected_loss, qu, retain_graph=True)[0]  # r = ∂A/∂(Qu)
    objective = qu @ (q @ residual).detach() if precondition else expected_loss
    expected = torch.autograd.grad(objective, [lam for lams in lambdas for lam in lams])
    torch.testing.assert_close(aux_loss, expected_loss.detach(), rtol=1e-4, atol=1e-5)
    for g, e in zip(grads, expected):
        torch.testing.assert_close(g, e, rtol=1e-3, atol=1e-5)


def test_a_wide_layer_on_aligned_rows_steps_and_learns_lambda_as_the_dense_maths_says():
    """A block ≥ ALIGN_FROM wide lives on rows that start aligned (strided views): its Q·g is the
    dense Q's, its aux loss and gradient the dense ones, and the fused Adam of λ moves λ as a
    plain Adam given those gradients does (a gradient read in another memory order would not)."""
    model, likelihood, damping = nn.Linear(ALIGN_FROM + 9, 3), CategoricalLikelihood(), 0.3
    opt = FishLeg(model, likelihood, aux_data="manual", damping=damping, normalize_aux=False, aux_lr=0.05)
    randomize(opt)
    (block,) = opt.curvature.blocks
    assert block.structure.shape == (3, ALIGN_FROM + 10)
    assert not block.grad.is_contiguous() and block.grad.stride()[0] % ROW_ALIGN == 0
    x = torch.randn(16, ALIGN_FROM + 9)
    likelihood.nll(model(x), torch.randint(3, (16,))).backward()
    opt.step()
    q = dense_q(block.structure)
    torch.testing.assert_close(block.join([p.grad for p in block.params]).flatten(), block.grad.flatten())
    torch.testing.assert_close(block.qg.flatten(), q @ block.grad.flatten(), rtol=1e-4, atol=1e-5)

    u = [torch.randn_like(p) for p in block.params]
    lambdas = [lam.detach().clone().requires_grad_() for lam in block.structure.params]
    flat_u = block.join(u).flatten()
    dense = dense_q(block.structure, lambdas)
    qu = dense @ flat_u
    curvature = dense_fisher(model, likelihood, x, opt.curvature.blocks) + damping * torch.eye(len(flat_u))
    residual = (curvature @ qu - flat_u).detach()
    expected = torch.autograd.grad(qu @ (dense @ residual).detach(), lambdas)
    reference = torch.optim.Adam(lambdas, lr=0.05, foreach=False)
    for lam, e in zip(lambdas, expected):
        lam.grad = e
    reference.step()
    aux_loss = opt.update_aux(x, u=u)
    torch.testing.assert_close(aux_loss, (0.5 * qu @ curvature @ qu - flat_u @ qu).detach(), rtol=1e-4, atol=1e-5)
    for lam, e in zip(block.structure.params, lambdas):
        torch.testing.assert_close(lam.detach(), e.detach().tril(), rtol=1e-4, atol=1e-6)


def test_the_scale_free_aux_loss_is_blind_to_q_scale_and_needs_a_step_length_from_elsewhere():
    """A_s(cQ) = A_s(Q) for every c > 0, so its λ gradient does not move Q's overall scale: for kron
    (the default), Q = LLᵀ ⊗ RRᵀ per block, and scaling every block's L by s scales Q by s², so
    Σ_blocks ⟨∂A_s/∂L, L⟩ = 0 (each block's own term is not: the scale is one for all blocks)."""
    model = tiny_mlp()
    opt = FishLeg(
        model, CategoricalLikelihood(), aux_data="manual", scale_free_aux=True, graft="adam", precondition_aux=False
    )
    randomize(opt)
    x = torch.randn(7, 3)
    probes = [torch.randn(b.structure.shape) for b in opt.curvature.blocks]
    grads, _ = opt.curvature.aux_gradients(opt.curvature.blocks, x, probes)
    lefts = [b.structure.params[0].detach().tril() for b in opt.curvature.blocks]
    terms = torch.stack([(lam * g.tril()).sum() for lam, g in zip(lefts, grads[::2], strict=True)])
    assert terms.abs().min() > 1e-3 * terms.abs().max()  # not zero block by block
    assert abs(float(terms.sum())) < 1e-4 * float(terms.abs().sum())
    with pytest.raises(ValueError, match="scale_free_aux leaves Q's scale where it started"):
        FishLeg(model, CategoricalLikelihood(), aux_data="manual", scale_free_aux=True)


def test_kron_learns_inverse_damped_fisher_of_linear_regression():
    """y = W̃ x̃ + ε with σ = 1: F = I_out ⊗ E[x̃x̃ᵀ] exactly (row-major [W | b]), so kron can
    represent (F + γI)⁻¹ = I ⊗ (E[x̃x̃ᵀ] + γI)⁻¹ and the aux loop must find it."""
    model = nn.Linear(3, 2)
    x = torch.randn(256, 3) @ torch.tensor([[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 0.5]]) + 0.5
    damping = 0.1
    opt = FishLeg(
        model,
        GaussianLikelihood(),
        aux_data="manual",
        q_structure="kron",
        damping=damping,
        aux_lr=3e-2,
        u_sampling="gaussian",
    )
    for i in range(1500):
        if i == 1000:
            opt.curvature.aux_optimizer.param_groups[0]["lr"] = 3e-3
        opt.update_aux(x)
    xt = torch.cat([x, torch.ones(len(x), 1)], dim=1)
    target = torch.linalg.inv(torch.kron(torch.eye(2), xt.T @ xt / len(x)) + damping * torch.eye(8))
    q = dense_q(opt.curvature.blocks[0].structure).detach()
    v = torch.randn(8, 100)
    rel = torch.linalg.norm(q @ v - target @ v, dim=0) / torch.linalg.norm(target @ v, dim=0)
    assert rel.max() < 0.05, rel.max()


@pytest.mark.parametrize("aux", ["manual, never fed", "learn_q false"])
def test_frozen_identity_q_is_sgd_with_momentum(aux):
    """Q = s·I and m₀ = 0: m_t = (1−β)s Σ_k β^(t−k) g_k and θ ← θ − η m_t. torch's SGD keeps
    buf_t = Σ_k β^(t−k) g_k (dampening 0, buf₁ = g₁), so this is SGD at lr η·s·(1−β). Q stays
    frozen when nothing feeds the aux loop, or with aux data and a λ update due every step when
    learn_q is false."""
    lr, s, beta = 0.1, 0.5, 0.8
    a, b = tiny_mlp(), tiny_mlp()
    b.load_state_dict(a.state_dict())
    extra = (
        {"aux_data": "manual"}
        if aux == "manual, never fed"
        else {"aux_data": torch.randn(32, 3), "update_aux_every": 1, "learn_q": False}
    )
    fish = FishLeg(a, CategoricalLikelihood(), lr=lr, init_scale=s, beta=beta, weight_decay=0.0, **extra)
    sgd = torch.optim.SGD(b.parameters(), lr=lr * s * (1 - beta), momentum=beta)
    x, y = torch.randn(16, 3), torch.randint(3, (16,))
    for _ in range(5):
        for model, opt in ((a, fish), (b, sgd)):
            opt.zero_grad()
            CategoricalLikelihood().nll(model(x), y).backward()
            opt.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)


def train(model, opt, data, steps):
    x, y = data
    for i in range(steps):
        idx = slice((4 * i) % 32, (4 * i) % 32 + 8)
        opt.zero_grad()
        CategoricalLikelihood().nll(model(x[idx]), y[idx]).backward()
        opt.step()


@pytest.mark.parametrize("name", STRUCTURE_NAMES)
def test_state_dict_round_trip_continues_bit_identically(name):
    data = (torch.randn(40, 3), torch.randint(3, (40,)))

    def make(seed_model):
        torch.manual_seed(seed_model)
        model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 3))
        opt = FishLeg(
            model,
            CategoricalLikelihood(),
            aux_data=data[0],
            update_aux_every=2,
            aux_batch_size=8,
            q_structure=name,
            aux_lr=1e-2,
            seed=5,
        )
        return model, opt

    model, opt = make(0)
    train(model, opt, data, 5)
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buf)
    train(model, opt, data, 6)

    model2, opt2 = make(1)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    model2.load_state_dict(saved["model"])
    opt2.load_state_dict(saved["opt"])
    assert opt2.step_count == 5 and opt2.curvature.aux_step_count == 2
    train(model2, opt2, data, 6)
    for p1, p2 in zip(model.state_dict().values(), model2.state_dict().values()):
        assert torch.equal(p1, p2)
    assert torch.equal(opt.curvature.last_aux_loss, opt2.curvature.last_aux_loss)


def test_aux_pass_leaves_batchnorm_buffers_and_rng_unchanged():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Dropout(0.3), nn.Linear(4, 3))
    x = torch.randn(16, 3)
    opt = FishLeg(model, CategoricalLikelihood(), aux_data="manual", u_sampling="gaussian")
    before = {n: b.clone() for n, b in model.named_buffers()}
    rng = torch.get_rng_state()
    opt.update_aux(x)
    assert torch.equal(torch.get_rng_state(), rng)
    for n, b in model.named_buffers():
        assert torch.equal(b, before[n]), n
    assert torch.isfinite(opt.curvature.last_aux_loss)


def test_aux_schedule_and_gradient_probe_share_q_g():
    """Aux updates happen at steps K, 2K, ...; the step that updates λ uses Q(λ_old)·g."""
    model = tiny_mlp()
    x, y = torch.randn(32, 3), torch.randint(3, (32,))
    opt = FishLeg(model, CategoricalLikelihood(), aux_data=x, update_aux_every=3, aux_batch_size=8, aux_lr=0.1)
    counts = []
    for _ in range(7):
        opt.zero_grad()
        CategoricalLikelihood().nll(model(x), y).backward()
        lam_before = [lam.clone() for b in opt.curvature.blocks for lam in b.structure.params]
        expected_qg = opt.apply_q([p.grad for p in opt.param_groups[0]["params"]])
        opt.step()
        counts.append(opt.curvature.aux_step_count)
        got_qg = [v for b in opt.curvature.blocks for v in b.qg_views]
        for g, e in zip(got_qg, expected_qg):
            torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-6)
        changed = any(
            not torch.equal(a, lam)
            for a, lam in zip(lam_before, (x for b in opt.curvature.blocks for x in b.structure.params))
        )
        assert changed == (opt.step_count % 3 == 0)
    assert counts == [0, 0, 1, 1, 1, 2, 2]


def test_training_lowers_the_loss_on_a_conv_net():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 3))
    x = torch.randn(64, 1, 8, 8)
    y = (x.mean((1, 2, 3)) > 0).long() + (x[:, 0, 0, 0] > 1).long()
    opt = FishLeg(
        model, CategoricalLikelihood(), aux_data=x, lr=0.05, aux_lr=1e-3, update_aux_every=2, aux_batch_size=16
    )
    lik = CategoricalLikelihood()
    first = lik.nll(model(x), y).item()
    for _ in range(60):
        opt.zero_grad()
        lik.nll(model(x), y).backward()
        opt.step()
    assert lik.nll(model(x), y).item() < 0.5 * first


def test_autocast_training_keeps_curvature_in_float32():
    model = tiny_mlp()
    x, y = torch.randn(32, 3), torch.randint(3, (32,))
    opt = FishLeg(model, CategoricalLikelihood(), aux_data=x, update_aux_every=1, aux_batch_size=8)
    for _ in range(3):
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
            assert out.dtype == torch.bfloat16
        CategoricalLikelihood().nll(out.float(), y).backward()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            opt.step()
    assert all(lam.dtype == torch.float32 for b in opt.curvature.blocks for lam in b.structure.params)
    assert torch.isfinite(opt.curvature.last_aux_loss) and opt.curvature.aux_step_count == 3


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"q_structure": "full"}, "q_structure"),
        ({"lr": 0.0}, "lr"),
        ({"damping": -1.0}, "damping"),
        ({"aux_batch_size": 0}, "aux_batch_size"),
        ({"beta": 1.0}, "beta"),
    ],
)
def test_bad_hyperparameters_raise_value_error_naming_them(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        FishLeg(tiny_mlp(), CategoricalLikelihood(), **kwargs)


def test_unknown_hyperparameter_is_a_type_error():
    with pytest.raises(TypeError, match="bogus"):
        FishLeg(tiny_mlp(), CategoricalLikelihood(), aux_data="manual", bogus=1)


def test_lr_scheduler_scales_the_step():
    """β = 0, no weight decay, Q = 0.5·I: Δθ = −lr·0.5·g, and StepLR halves lr after a step."""
    model = tiny_mlp()
    opt = FishLeg(model, CategoricalLikelihood(), aux_data="manual", lr=0.1, beta=0.0, weight_decay=0.0, init_scale=0.5)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    grads = [torch.randn_like(p) for p in model.parameters()]
    for lr in (0.1, 0.05):
        for p, g in zip(model.parameters(), grads):
            p.grad = g.clone()
        before = [p.detach().clone() for p in model.parameters()]
        opt.step()
        sched.step()
        for p, p0, g in zip(model.parameters(), before, grads):
            torch.testing.assert_close(p - p0, -lr * 0.5 * g)


def test_damping_in_param_groups_drives_the_aux_step():
    """Changing param_groups[0]["damping"] between steps gives the aux step of an optimizer
    built with that damping: the aux loss ½ uᵀQ(F+γI)Qu − uᵀQu and the λ gradient."""
    x = torch.randn(8, 3)
    grads = [torch.randn_like(p) for p in tiny_mlp().parameters()]
    losses, lambda_grads = [], []
    for build, then in ((0.5, 0.05), (0.05, None), (0.5, None)):
        torch.manual_seed(0)
        opt = FishLeg(tiny_mlp(), CategoricalLikelihood(), aux_data="manual", damping=build, seed=0)
        if then is not None:
            opt.param_groups[0]["damping"] = then
        g, loss = opt.curvature.aux_gradients(
            opt.curvature.blocks, x, [b.join(grads[i : i + 2]) for i, b in zip((0, 2), opt.curvature.blocks)]
        )
        losses.append(float(loss.detach()))
        lambda_grads.append([t.clone() for t in g])
    assert losses[0] == pytest.approx(losses[1]) and losses[0] != pytest.approx(losses[2])
    for changed, built in zip(lambda_grads[0], lambda_grads[1]):
        torch.testing.assert_close(changed, built)
    assert not torch.allclose(lambda_grads[0][0], lambda_grads[2][0])


def test_a_second_parameter_group_is_refused():
    opt = FishLeg(tiny_mlp(), CategoricalLikelihood(), aux_data="manual")
    with pytest.raises(ValueError, match="one parameter group"):
        opt.add_param_group({"params": [nn.Parameter(torch.zeros(2))]})


def test_building_leaves_the_global_rng_alone_and_seed_fixes_random_factors():
    models = [tiny_mlp() for _ in range(3)]
    state = torch.get_rng_state()
    a = FishLeg(models[0], "categorical", aux_data="manual", q_structure="kron_sum", seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    b = FishLeg(models[1], "categorical", aux_data="manual", q_structure="kron_sum", seed=3)
    c = FishLeg(models[2], "categorical", aux_data="manual", q_structure="kron_sum", seed=4)
    lam = [blk.structure.params[0] for blk in (a.curvature.blocks[0], b.curvature.blocks[0], c.curvature.blocks[0])]
    assert torch.equal(lam[0], lam[1]) and not torch.equal(lam[0], lam[2])


def test_model_without_trainable_parameters_is_refused():
    model = tiny_mlp().requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        FishLeg(model, CategoricalLikelihood(), aux_data="manual")


def test_likelihood_that_does_not_fit_the_outputs_is_refused():
    model = nn.Sequential(nn.Linear(3, 1), nn.Flatten(0))
    with pytest.raises(ValueError, match="CategoricalLikelihood"):
        FishLeg(model, CategoricalLikelihood(), aux_data=torch.randn(10, 3))


def linear_regression_target(x: torch.Tensor, damping: float) -> torch.Tensor:
    """(F + γI)⁻¹ of nn.Linear(3, 2) under a unit Gaussian likelihood, [W | b] row-major."""
    xt = torch.cat([x, torch.ones(len(x), 1)], dim=1)
    return torch.linalg.inv(torch.kron(torch.eye(2), xt.T @ xt / len(x)) + damping * torch.eye(8))


def test_warm_start_fits_q_to_the_fisher_before_the_first_step():
    """warmup_aux_steps λ updates run before the first parameter step, which then uses the
    warmed Q: Q is measurably closer to (F + γI)⁻¹ than its initial I, and the step's Q·g is
    the warmed Q's."""
    model = nn.Linear(3, 2)
    x = torch.randn(256, 3) @ torch.tensor([[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 0.5]]) + 0.5
    y = torch.randn(256, 2)
    target = linear_regression_target(x, 0.1)
    opt = FishLeg(
        model, GaussianLikelihood(), x, damping=0.1, aux_lr=3e-2, aux_batch_size=256, u_sampling="gaussian",
        warmup_aux_steps=300, update_aux_every=10,
    )  # fmt: skip

    def error() -> float:
        q = dense_q(opt.curvature.blocks[0].structure).detach()
        return float(torch.linalg.norm(q - target) / torch.linalg.norm(target))

    before = error()
    GaussianLikelihood().nll(model(x), y).backward()
    grads = [p.grad.clone() for p in opt.param_groups[0]["params"]]
    opt.step()
    assert opt.curvature.aux_step_count == 300 and error() < 0.25 * before, (before, error())
    for got, expected in zip([v for b in opt.curvature.blocks for v in b.qg_views], opt.apply_q(grads)):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    opt.zero_grad()
    GaussianLikelihood().nll(model(x), y).backward()
    opt.step()
    assert opt.curvature.aux_step_count == 300  # once, before the first step only

    restored = FishLeg(nn.Linear(3, 2), GaussianLikelihood(), x, warmup_aux_steps=300, u_sampling="gaussian")
    restored.load_state_dict(opt.state_dict())
    restored.model.weight.grad, restored.model.bias.grad = (torch.ones(2, 3), torch.ones(2))
    restored.step()
    assert restored.curvature.aux_step_count == 300  # a restored optimizer does not warm up again


def test_dense_aux_steps_update_lambda_every_step_first_then_every_kth():
    model = tiny_mlp()
    x, y = torch.randn(32, 3), torch.randint(3, (32,))
    opt = FishLeg(model, CategoricalLikelihood(), x, update_aux_every=5, dense_aux_steps=3, aux_batch_size=8)
    counts = []
    for _ in range(12):
        opt.zero_grad()
        CategoricalLikelihood().nll(model(x), y).backward()
        opt.step()
        counts.append(opt.curvature.aux_step_count)
    assert counts == [1, 2, 3, 3, 4, 4, 4, 4, 4, 5, 5, 5]


@pytest.mark.parametrize("u_sampling", ["gradient", "gaussian"])
def test_step_makes_no_host_sync_with_every_option(monkeypatch, u_sampling):
    """`step` never reads a tensor's value on the host (item, bool, float, int, tolist, cpu,
    numpy): on a GPU each would stall the stream."""
    model = tiny_mlp()
    x, y = torch.randn(32, 3), torch.randint(3, (32,))
    opt = FishLeg(
        model, CategoricalLikelihood(), x, update_aux_every=3, dense_aux_steps=2, warmup_aux_steps=2,
        aux_batch_size=8, u_sampling=u_sampling, q_init="kfac", kfac_every=2, damping=0.1, adaptive_damping=True,
        bound_step=True, step_rule="quadratic", lr=0.5,
    )  # fmt: skip

    def refuse(*args, **kwargs):
        raise AssertionError("host sync in FishLeg.step")

    losses = []
    for _ in range(6):
        with monkeypatch.context() as m:
            for name in ("item", "__bool__", "__float__", "__int__", "tolist", "cpu", "numpy"):
                m.setattr(torch.Tensor, name, refuse)
            loss = opt.step(closure_for(opt, x, y))
        losses.append(float(loss.detach()))
    assert opt.curvature.aux_step_count == 2 + 2 + 1 + 1  # warm-up, steps 1-2, steps 3 and 6
    assert losses[-1] < losses[0]


def closure_for(opt: FishLeg, x: torch.Tensor, y: torch.Tensor):
    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = opt.likelihood.nll(opt.model(x), y)
        loss.backward()
        return loss

    return closure


def test_adaptive_damping_trusts_an_exact_quadratic_model():
    """Linear regression under a Gaussian likelihood, full batch: the loss is the quadratic
    model (F is its Hessian), so ρ = 1 on every adaptation and the damping shrinks by
    ω = (19/20)^k each time, k = update_aux_every."""
    x = torch.randn(64, 3)
    y = x @ torch.randn(3, 2) + 0.1 * torch.randn(64, 2)
    opt = FishLeg(nn.Linear(3, 2), "gaussian", x, aux_batch_size=64, update_aux_every=2, adaptive_damping=True)
    closure = closure_for(opt, x, y)
    for _ in range(6):
        opt.step(closure)
    torch.testing.assert_close(
        opt.damping_rule.last_rho, torch.tensor(1.0), rtol=1e-2, atol=0
    )  # float32 loss differences
    torch.testing.assert_close(opt.damping_rule.scale, torch.tensor((19 / 20) ** 6))


def test_adaptive_damping_grows_when_the_step_overshoots_and_is_checkpointed():
    torch.manual_seed(0)
    x, y = torch.randn(32, 3), torch.randint(3, (32,))
    opt = FishLeg(tiny_mlp(), "categorical", x, lr=300.0, beta=0.0, update_aux_every=1, adaptive_damping=True)
    closure = closure_for(opt, x, y)
    for _ in range(3):
        opt.step(closure)
    assert opt.damping_rule.last_rho < 0.25
    torch.testing.assert_close(opt.damping_rule.scale, torch.tensor((20 / 19) ** 3))
    restored = FishLeg(tiny_mlp(), "categorical", x, update_aux_every=1, adaptive_damping=True)
    restored.load_state_dict(opt.state_dict())
    torch.testing.assert_close(restored.damping_rule.scale, opt.damping_rule.scale)
    torch.testing.assert_close(restored.damping_rule.last_rho, opt.damping_rule.last_rho)


def test_adaptive_damping_scales_the_damping_the_aux_step_uses():
    x = torch.randn(16, 3)
    opt = FishLeg(tiny_mlp(), "categorical", x, damping=0.2, adaptive_damping=True)
    u = [torch.randn_like(p) for p in opt.param_groups[0]["params"]]
    probes = opt.curvature.per_block(u)
    qu = [b.structure.apply_cached(p, torch.empty_like(p)) for b, p in zip(opt.curvature.blocks, probes)]
    _, before = opt.curvature.aux_gradients(opt.curvature.blocks, x, probes, qu)
    opt.damping_rule.scale.fill_(3.0)
    _, after = opt.curvature.aux_gradients(opt.curvature.blocks, x, probes, qu)
    norm2 = sum(float(v.pow(2).sum()) for v in qu)  # A = ½vᵀ(F+γI)v − uᵀv: γ enters as ½γ‖v‖²
    torch.testing.assert_close(after - before, torch.tensor(0.5 * (0.6 - 0.2) * norm2), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "option",
    [{"adaptive_damping": True}, {"step_rule": "quadratic"}, {"q_init": "kfac"}, {"warmup_aux_steps": 3}],
    ids=lambda o: next(iter(o)),
)
def test_options_that_run_curvature_on_aux_batches_need_aux_data_at_construction(option):
    """One rule for every such option: refused at construction, never skipped silently."""
    with pytest.raises(ValueError, match=f"FishLeg: {next(iter(option))}( '\\w+')? needs aux_data"):
        FishLeg(tiny_mlp(), "categorical", aux_data="manual", **option)


def test_an_aux_loop_nothing_feeds_is_refused_at_construction_with_what_to_pass():
    with pytest.raises(
        ValueError,
        match=r"no aux_data, but the aux loop.*aux_from_loader\(self.trainer.datamodule\).*"
        r"aux_data='manual'.*learn_q=False",
    ):
        FishLeg(tiny_mlp(), "categorical")
    with pytest.raises(ValueError, match="aux_data 'manul': the only text it takes is 'manual'"):
        FishLeg(tiny_mlp(), "categorical", aux_data="manul")
    assert (
        FishLeg(tiny_mlp(), "categorical", learn_q=False).curvature.aux_sampler is None
    )  # Q kept at q_init on purpose


def _steps(opt: FishLeg, model: nn.Module, n: int, after_each=lambda: None) -> None:
    x, y = torch.randn(12, 3), torch.randint(2, (12,))
    for _ in range(n):
        opt.zero_grad()
        opt.likelihood.nll(model(x), y).backward()
        opt.step()
        after_each()


def test_a_q_that_nothing_feeds_warns_once_at_the_second_scheduled_update():
    model = tiny_mlp()
    opt = FishLeg(model, "categorical", aux_data="manual", update_aux_every=2)
    with pytest.warns(
        UserWarning, match=r"Q\(λ\) has not been learnt by step 4: aux_data is 'manual'.*update_aux"
    ) as seen:
        _steps(opt, model, 8)
    assert len(seen) == 1


@pytest.mark.parametrize("setup", ["learn_q", "update_aux"])
def test_no_warning_when_q_is_fixed_on_purpose_or_fed_by_hand(setup, recwarn):
    model = tiny_mlp()
    opt = FishLeg(model, "categorical", aux_data="manual", update_aux_every=2, learn_q=setup != "learn_q")
    feed = (lambda: opt.update_aux(torch.randn(4, 3))) if setup == "update_aux" else (lambda: None)
    _steps(opt, model, 8, feed)
    assert not [w for w in recwarn if "has not been learnt" in str(w.message)]
    assert opt.curvature.aux_step_count == (8 if setup == "update_aux" else 0)


def test_loading_another_optimizers_state_is_refused_by_name():
    model = tiny_mlp()
    adamw_state = torch.optim.AdamW(model.parameters()).state_dict()
    with pytest.raises(ValueError, match="this state was not saved by FishLeg"):
        FishLeg(model, "categorical", aux_data="manual").load_state_dict(adamw_state)


def test_a_state_saved_for_a_model_of_other_sizes_or_layers_is_named_as_such():
    x = torch.randn(16, 3)
    saved = FishLeg(tiny_mlp(), "categorical", x).state_dict()  # 3 → 4 → 2
    wider = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2))
    with pytest.raises(
        ValueError,
        match=r"saved for another model: its parameter 0 has shape \(4, 3\), this model's "
        r"\(0.weight\) has \(8, 3\)",
    ):
        FishLeg(wider, "categorical", x).load_state_dict(saved)
    with pytest.raises(ValueError, match="saved for another model: it holds 4 parameters, this model's FishLeg has 2"):
        FishLeg(nn.Linear(3, 2), "categorical", x).load_state_dict(saved)


@pytest.mark.parametrize("name", STRUCTURE_NAMES)
def test_the_first_aux_step_moves_each_lambda_against_its_own_gradient(name):
    """Adam's first step is −aux_lr·sign(g) elementwise: each λ entry gets its own gradient
    (a transposed λ under the fused Adam once got its gradient transposed)."""
    torch.manual_seed(0)
    model, x = tiny_mlp(), torch.randn(12, 3)
    opt = FishLeg(model, "categorical", aux_data="manual", q_structure=name, aux_lr=1e-3, seed=0)
    u = [torch.randn_like(p) for p in model.parameters()]
    grads, _ = opt.curvature.aux_gradients(opt.curvature.blocks, x, opt.curvature.per_block(u))
    grads = [g.clone() for g in grads]
    before = [lam.detach().clone() for b in opt.curvature.blocks for lam in b.structure.params]
    opt.update_aux(x, u)
    after = [lam.detach() for b in opt.curvature.blocks for lam in b.structure.params]
    for g, b, a in zip(grads, before, after):
        clear = g.abs() > 1e-6
        torch.testing.assert_close((a - b)[clear], -1e-3 * g.sign()[clear], rtol=1e-3, atol=1e-7)


def test_adaptive_damping_needs_a_closure_on_every_step():
    """Refused on the first step, not only on the first step that adapts."""
    x, y = torch.randn(8, 3), torch.randint(3, (8,))
    opt = FishLeg(tiny_mlp(), "categorical", x, update_aux_every=5, adaptive_damping=True)
    opt.likelihood.nll(opt.model(x), y).backward()
    with pytest.raises(ValueError, match=r"adaptive_damping needs step\(closure\)"):
        opt.step()
    assert opt.step_count == 0


def recording_draws(opt: FishLeg) -> list[torch.Tensor]:
    """The aux batches `opt` draws from now on, in order (the draws themselves unchanged)."""
    drawn: list[torch.Tensor] = []
    draw = opt.curvature.aux_sampler.draw
    opt.curvature.aux_sampler.draw = lambda: drawn.append(draw()) or drawn[-1]
    return drawn


def flat_params(opt: FishLeg) -> torch.Tensor:
    return torch.cat([b.join([p.detach() for p in b.params]).flatten() for b in opt.curvature.blocks])


def test_quadratic_step_minimises_the_damped_model_over_q_g_and_the_last_step():
    """δ = lr·argmin of gᵀδ + ½δᵀ(F + γI)δ over the plane of Q·g and the last step δ₀, with F
    dense on the aux batch the step drew: at lr = 1 the model's gradient g + (F + γI)δ is
    orthogonal to both directions (on the first step, δ₀ = 0: a line search along Q·g)."""
    torch.manual_seed(0)
    x, y = torch.randn(24, 3), torch.randint(3, (24,))
    damping = 0.2
    opt = FishLeg(tiny_mlp(), "categorical", x, aux_batch_size=12, damping=damping, weight_decay=0.0,
                  update_aux_every=1, step_rule="quadratic", lr=1.0)  # fmt: skip
    randomize(opt)
    drawn = recording_draws(opt)
    last = torch.zeros_like(flat_params(opt))
    for _ in range(3):
        before = flat_params(opt)
        opt.step(closure_for(opt, x, y))
        step = flat_params(opt) - before
        g = torch.cat([b.grad.flatten() for b in opt.curvature.blocks])
        qg = torch.cat([b.qg.flatten() for b in opt.curvature.blocks])
        fisher = dense_fisher(opt.model, opt.likelihood, drawn[-1], opt.curvature.blocks, at=before)
        model_grad = g + (fisher + damping * torch.eye(len(g))) @ step
        for direction in (qg, last):
            if direction.norm() > 0:
                cosine = direction @ model_grad / (direction.norm() * model_grad.norm())
                assert abs(cosine) < 1e-3, float(cosine)
        assert g @ step < 0
        last = step


def test_quadratic_step_scales_with_lr_and_keeps_the_last_step_in_its_checkpoint():
    torch.manual_seed(0)
    x, y = torch.randn(24, 3), torch.randint(3, (24,))
    steps = []
    for lr in (1.0, 0.25):
        torch.manual_seed(1)
        opt = FishLeg(tiny_mlp(), "categorical", x, weight_decay=0.0, step_rule="quadratic", lr=lr, seed=3)
        before = flat_params(opt)
        opt.step(closure_for(opt, x, y))
        steps.append(flat_params(opt) - before)
    torch.testing.assert_close(steps[1], 0.25 * steps[0])
    restored = FishLeg(tiny_mlp(), "categorical", x, step_rule="quadratic")
    restored.load_state_dict(opt.state_dict())
    for p, q in zip(opt.param_groups[0]["params"], restored.param_groups[0]["params"]):
        torch.testing.assert_close(restored.state[q]["momentum_buffer"], opt.state[p]["momentum_buffer"])


def test_minimise_quadratic_solves_two_directions_and_falls_back_to_a_line_search():
    matrix, linear = torch.tensor([[2.0, 0.5], [0.5, 1.0]]), torch.tensor([1.0, -1.0])
    torch.testing.assert_close(minimise_quadratic(matrix, linear), -torch.linalg.solve(matrix, linear))
    torch.testing.assert_close(minimise_quadratic(matrix[:1, :1], linear[:1]), torch.tensor([-0.5]))
    parallel = torch.tensor([[2.0, 4.0], [4.0, 8.0]])  # the second direction is twice the first
    torch.testing.assert_close(minimise_quadratic(parallel, torch.tensor([1.0, 2.0])), torch.tensor([-0.5, 0.0]))


def test_aux_lr_start_moves_geometrically_to_aux_lr_and_resumes_where_it_was():
    """The ramp is a torch LR scheduler on `aux_optimizer`: the group's lr is the one the next
    λ update uses."""
    x, y = torch.randn(16, 3), torch.randint(3, (16,))
    kwargs = {"aux_lr": 1e-4, "aux_lr_start": 1e-2, "aux_lr_decay_steps": 4, "update_aux_every": 1, "seed": 0}
    opt = FishLeg(tiny_mlp(), "categorical", x, aux_batch_size=8, **kwargs)
    assert isinstance(opt.curvature.aux_lr_ramp, torch.optim.lr_scheduler.LRScheduler)
    lambdas = [lam for b in opt.curvature.blocks for lam in b.structure.params]
    before = [lam.detach().clone() for lam in lambdas]
    closure = closure_for(opt, x, y)
    rates = [opt.curvature.aux_optimizer.param_groups[0]["lr"]]
    opt.step(closure)
    moved = max(float((lam.detach() - b).abs().max()) for lam, b in zip(lambdas, before))
    assert moved == pytest.approx(1e-2, rel=1e-3)  # Adam's first step moves λ by its lr
    for _ in range(2):
        rates.append(opt.curvature.aux_optimizer.param_groups[0]["lr"])
        opt.step(closure)
    restored = FishLeg(tiny_mlp(), "categorical", x, aux_batch_size=8, **kwargs)
    restored.load_state_dict(opt.state_dict())
    restored.model.load_state_dict(opt.model.state_dict())
    for _ in range(3):
        rates.append(restored.curvature.aux_optimizer.param_groups[0]["lr"])
        restored.step(closure_for(restored, x, y))
    assert rates == pytest.approx([1e-2, 10**-2.5, 1e-3, 10**-3.5, 1e-4, 1e-4])


def test_bound_step_shortens_only_q_g_longer_than_g_over_damping():
    """With Q = 16·I (λ = 2·I per factor) and γ = 0.25, Q·g = 16g is longer than ‖g‖/γ = 4‖g‖:
    the step uses 4g. With γ = 0.05 (bound 20‖g‖) it is left alone."""
    for damping, expected in [(0.25, 4.0), (0.05, 16.0)]:
        model = nn.Linear(3, 2)
        opt = FishLeg(
            model, "gaussian", torch.randn(8, 3), damping=damping, beta=0.0, weight_decay=0.0, bound_step=True
        )
        opt.curvature.blocks[0].structure.set_kronecker(2 * torch.eye(2), 2 * torch.eye(4))
        model.weight.grad, model.bias.grad = torch.randn(2, 3), torch.randn(2)
        before = [p.detach().clone() for p in model.parameters()]
        grads = [p.grad.clone() for p in model.parameters()]
        opt.step()
        for p, b, g in zip(model.parameters(), before, grads):
            torch.testing.assert_close(p.detach(), b - opt.param_groups[0]["lr"] * expected * g)
