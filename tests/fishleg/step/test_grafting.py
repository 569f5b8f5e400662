"""Grafting against its definition: per block, the step's length is the grafted method's own
step length (that method run alone by torch.optim on a copy) and its direction is FishLeg's
(its momentum of Q·g)."""

import copy

import pytest
import torch
from torch import nn

from fishleg import FishLeg, FishLegConfig

from ..test_structures import STRUCTURE_NAMES, randomize

TORCH_METHODS = {
    "adam": lambda params, beta2, eps: torch.optim.Adam(params, lr=0.01, betas=(0.8, beta2), eps=eps),
    "rmsprop": lambda params, beta2, eps: torch.optim.RMSprop(params, lr=0.01, alpha=beta2, eps=eps),
    "adagrad": lambda params, beta2, eps: torch.optim.Adagrad(params, lr=0.01, eps=eps),
    "sgd": lambda params, beta2, eps: torch.optim.SGD(params, lr=0.01),
}


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))


def block_norm(tensors):
    return torch.sqrt(sum(t.pow(2).sum() for t in tensors))


@pytest.mark.parametrize("method", sorted(TORCH_METHODS))
@pytest.mark.parametrize("structure", STRUCTURE_NAMES)
def test_each_blocks_step_has_the_grafted_methods_length_and_fishlegs_direction(method, structure):
    torch.manual_seed(0)
    model = mlp()
    opt = FishLeg(model, "categorical", aux_data="manual", lr=0.01, beta=0.8, weight_decay=0.0, q_structure=structure,
                  graft=method, graft_beta2=0.99, graft_eps=1e-6)  # fmt: skip
    randomize(opt)  # no aux_data: Q stays this random Q
    shadow = copy.deepcopy(model)
    alone = TORCH_METHODS[method](list(shadow.parameters()), 0.99, 1e-6)
    momentum = [torch.zeros_like(p) for p in model.parameters()]
    for _ in range(4):
        grads = [torch.randn_like(p) for p in model.parameters()]
        for p, q, g in zip(model.parameters(), shadow.parameters(), grads):
            p.grad, q.grad = g.clone(), g.clone()
        qg = opt.apply_q(grads)
        momentum = [0.8 * m + 0.2 * v for m, v in zip(momentum, qg)]
        before, shadow_before = copy.deepcopy(model), copy.deepcopy(shadow)
        opt.step()
        alone.step()
        for b in opt.curvature.blocks:
            index = [i for i, p in enumerate(model.parameters()) if any(p is q for q in b.params)]
            step = [list(before.parameters())[i] - list(model.parameters())[i] for i in index]
            own = [list(shadow_before.parameters())[i] - list(shadow.parameters())[i] for i in index]
            direction = [momentum[i] for i in index]
            torch.testing.assert_close(block_norm(step), block_norm(own), rtol=1e-4, atol=1e-7)
            scale = block_norm(step) / block_norm(direction)
            for s, d in zip(step, direction):
                torch.testing.assert_close(s, scale * d, rtol=1e-4, atol=1e-7)


def test_sgd_graft_with_q_at_the_identity_is_sgd():
    torch.manual_seed(0)
    model = mlp()
    shadow = copy.deepcopy(model)
    opt = FishLeg(model, "categorical", aux_data="manual", lr=0.05, beta=0.0, weight_decay=0.0, graft="sgd")
    sgd = torch.optim.SGD(shadow.parameters(), lr=0.05)
    x, y = torch.randn(16, 3), torch.randint(2, (16,))
    for _ in range(5):
        for m, o in ((model, opt), (shadow, sgd)):
            o.zero_grad()
            nn.functional.cross_entropy(m(x), y).backward()
            o.step()
    for p, q in zip(model.parameters(), shadow.parameters()):
        torch.testing.assert_close(p, q)


def test_a_grafted_run_resumes_identically():
    torch.manual_seed(0)
    x, y = torch.randn(32, 3), torch.randint(2, (32,))
    settings = {"graft": "adam", "aux_batch_size": 8, "update_aux_every": 2, "lr": 0.01, "seed": 1}

    def train(opt, steps):
        for _ in range(steps):
            opt.zero_grad()
            opt.likelihood.nll(opt.model(x), y).backward()
            opt.step()

    model = mlp()
    resumed_model = copy.deepcopy(model)
    opt = FishLeg(model, "categorical", x, **settings)
    train(opt, 3)
    state, weights = copy.deepcopy(opt.state_dict()), copy.deepcopy(model.state_dict())
    train(opt, 3)
    resumed = FishLeg(resumed_model, "categorical", x, **settings)
    resumed_model.load_state_dict(weights)
    resumed.load_state_dict(state)
    train(resumed, 3)
    for p, q in zip(model.parameters(), resumed_model.parameters()):
        assert torch.equal(p, q)


def test_graft_and_the_quadratic_step_are_refused_together():
    with pytest.raises(ValueError, match="graft 'adam' does not compose with step_rule 'quadratic'"):
        FishLegConfig(graft="adam", step_rule="quadratic")


def test_a_registered_graft_is_chosen_by_name_and_an_unknown_one_is_refused():
    """The registry is the one list of graft names: a graft registered by a user is accepted by
    FishLegConfig and the constructor (its step length is the gradient's, halved), and an
    unknown name is refused with the registered ones."""
    from fishleg.step.grafting import GRAFTS, Graft

    with GRAFTS.scoped():  # the registration is undone after the test

        @GRAFTS.register("half_sgd")
        class HalfSGD(Graft):
            def _directions(self, grads, buffers):
                return [0.5 * g for g in grads], 1.0

        assert FishLegConfig(graft="half_sgd").graft == "half_sgd"
        torch.manual_seed(0)
        model, twin = mlp(), mlp()
        twin.load_state_dict(model.state_dict())
        fish = FishLeg(model, "categorical", aux_data="manual", lr=0.1, beta=0.0, weight_decay=0.0, graft="half_sgd")
        plain = FishLeg(twin, "categorical", aux_data="manual", lr=0.1, beta=0.0, weight_decay=0.0, graft="sgd")
        x, y = torch.randn(8, 3), torch.randint(2, (8,))
        before = [p.detach().clone() for p in model.parameters()]
        for m, opt in ((model, fish), (twin, plain)):
            opt.zero_grad()
            nn.functional.cross_entropy(m(x), y).backward()
            opt.step()
        for p, q, w in zip(model.parameters(), twin.parameters(), before, strict=True):
            torch.testing.assert_close(p - w, 0.5 * (q - w))
        with pytest.raises(ValueError, match=r"must be 'none' or one of \['adagrad', 'adam', 'half_sgd'"):
            FishLegConfig(graft="lion")
    assert "half_sgd" not in GRAFTS
