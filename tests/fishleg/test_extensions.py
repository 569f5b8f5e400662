"""The extension points: a Q structure, a layer type, a likelihood, a step rule and a probe
scheme of one's own, and aux data given as a Dataset or an iterable of batches."""

import contextlib

import pytest
import torch
from torch import Tensor, nn

from fishleg import (
    FishLeg,
    FishLegConfig,
    GaussianLikelihood,
    QSpec,
    QStructure,
    WeightBiasAdapter,
    register_layer,
    register_likelihood,
    register_structure,
)
from fishleg.curvature.probes import PROBES, Probes
from fishleg.layers import LAYERS
from fishleg.likelihoods import LIKELIHOODS
from fishleg.step.rules import STEP_RULES, StepContext, StepRule
from fishleg.structures import STRUCTURES, KronQ


@pytest.fixture
def registries():
    """Registrations made in a test are undone after it."""
    with contextlib.ExitStack() as stack:
        for registry in (STRUCTURES, LAYERS, LIKELIHOODS, STEP_RULES, PROBES):
            stack.enter_context(registry.scoped())
        yield


class ScalarQ(QStructure):
    """Q = c²·I: one λ per block; the λ gradient comes from autograd through `apply`."""

    def init_params(self, shape: tuple[int, ...], spec: QSpec, device: torch.device) -> list[Tensor]:
        return [torch.tensor(spec.init_scale**0.5, device=device)]

    def apply(self, u: Tensor) -> Tensor:
        return self.params[0] ** 2 * u

    def refresh(self) -> None:
        self._c2 = self.params[0].detach() ** 2

    def apply_cached(self, u: Tensor, out: Tensor) -> Tensor:
        return torch.mul(u, self._c2, out=out)


def test_a_registered_structure_is_selectable_and_trains(registries):
    register_structure("scalar")(ScalarQ)
    assert FishLegConfig(q_structure="scalar").q_structure == "scalar"
    model = nn.Linear(3, 2)
    opt = FishLeg(model, GaussianLikelihood(), aux_data="manual", q_structure="scalar", init_scale=0.25, seed=0)
    assert [type(b.structure) for b in opt.curvature.blocks] == [ScalarQ]
    g = [torch.randn_like(p) for p in model.parameters()]
    for out, gi in zip(opt.apply_q(g), g):
        torch.testing.assert_close(out, 0.25 * gi)
    before = opt.curvature.blocks[0].structure.params[0].detach().clone()
    opt.update_aux(torch.randn(16, 3), u=g)
    assert not torch.equal(before, opt.curvature.blocks[0].structure.params[0])
    with pytest.raises(ValueError, match=r"(?s)q_structure.*must be one of .*scalar"):
        FishLegConfig(q_structure="scalarr")


def rademacher(shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
    return torch.randint(0, 2, shape, generator=generator).float().mul_(2).sub_(1)


class RademacherProbes(Probes):
    """u ∈ {±1} on every block: a probe scheme of one's own, one class and one registry line."""

    def in_step(self, stepped, every, *, reuse_qg):
        return every, self.default(every), None

    def default(self, every):
        return [rademacher(b.grad.shape, self.generator) for b in every]


def test_a_registered_probe_scheme_is_chosen_by_name_and_fits_q_along_its_probes(registries):
    PROBES.register("rademacher")(RademacherProbes)
    model, x = nn.Linear(3, 2), torch.randn(16, 3)
    opt = FishLeg(model, GaussianLikelihood(), aux_data="manual", u_sampling="rademacher", aux_lr=0.1, seed=0)
    ref = FishLeg(nn.Linear(3, 2), GaussianLikelihood(), aux_data="manual", aux_lr=0.1, seed=0)
    ref.load_state_dict(opt.state_dict())
    replay = torch.Generator().set_state(opt.curvature.probe_rng.get_state())
    u = [t for b in ref.curvature.blocks for t in b.split(rademacher(b.grad.shape, replay))]
    opt.update_aux(x)
    ref.update_aux(x, u=u)  # the same probes, given explicitly
    for mine, theirs in zip(opt.curvature.blocks, ref.curvature.blocks, strict=True):
        torch.testing.assert_close(mine.structure.params, theirs.structure.params)
    assert not torch.equal(
        opt.curvature.blocks[0].structure.params[0],
        FishLeg(model, GaussianLikelihood(), aux_data="manual").curvature.blocks[0].structure.params[0],
    )
    with pytest.raises(ValueError, match=r"(?s)u_sampling.*must be one of \['gaussian', 'gradient', 'rademacher'\]"):
        FishLegConfig(u_sampling="rademacherr")


class MyLinear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(4, 3))
        self.bias = nn.Parameter(torch.zeros(4))

    def forward(self, x: Tensor) -> Tensor:
        return x @ self.weight.T + self.bias


def test_a_registered_layer_gets_the_chosen_structure(registries):
    before = FishLeg(MyLinear(), GaussianLikelihood(), aux_data="manual")
    assert [b.structure.shape for b in before.curvature.blocks] == [(4, 3), (4,)]  # unknown: diag per parameter
    register_layer(MyLinear)(WeightBiasAdapter)
    after = FishLeg(MyLinear(), GaussianLikelihood(), aux_data="manual")
    assert len(after.curvature.blocks) == 1 and isinstance(after.curvature.blocks[0].structure, KronQ)
    assert after.curvature.blocks[0].structure.shape == (4, 4) and after.curvature.blocks[0].names == ["weight", "bias"]


class HalfGaussian(GaussianLikelihood):
    """N(f(x), 2²I), built by name without arguments."""

    def __init__(self) -> None:
        super().__init__(sigma=2.0)


def test_a_registered_likelihood_is_built_by_name(registries):
    with pytest.raises(ValueError, match="unknown likelihood 'half'"):
        FishLeg(nn.Linear(3, 2), "half", aux_data="manual")
    register_likelihood("half")(HalfGaussian)
    opt = FishLeg(nn.Linear(3, 2), "half", aux_data="manual")
    assert isinstance(opt.likelihood, HalfGaussian)
    assert isinstance(FishLeg(nn.Linear(3, 2), "gaussian", aux_data="manual").likelihood, GaussianLikelihood)


class SignStep(StepRule):
    """θ ← θ − lr·sign(Q·g): a rule of one's own, one class and one registry line."""

    uses_beta = False

    def apply(self, ctx: StepContext, predict: bool) -> Tensor | None:
        torch._foreach_add_(ctx.params, [q.sign() for q in ctx.qgs], alpha=-ctx.group["lr"])
        return None


def test_a_registered_step_rule_is_chosen_by_name_and_declares_what_it_composes_with(registries):
    STEP_RULES.register("sign")(SignStep)
    model = nn.Linear(3, 2)
    opt = FishLeg(model, "categorical", aux_data="manual", lr=0.1, init_scale=2.0, step_rule="sign")
    x, y = torch.randn(8, 3), torch.randint(2, (8,))
    before = [p.detach().clone() for p in model.parameters()]
    nn.functional.cross_entropy(model(x), y).backward()
    grads = [p.grad.clone() for p in model.parameters()]
    opt.step()
    for p, w, g in zip(model.parameters(), before, grads, strict=True):  # Q = 2·I: sign(Q·g) = sign(g)
        torch.testing.assert_close(p.detach(), w - 0.1 * g.sign())
    with pytest.raises(ValueError, match="beta 0.5 has no role with step_rule 'sign'"):
        FishLegConfig(step_rule="sign", beta=0.5)
    with pytest.raises(ValueError, match=r"step_rule: must be one of \['momentum', 'quadratic', 'sign'\]"):
        FishLeg(model, "categorical", aux_data="manual", step_rule="signum")
