"""The rivals (muon, soap, shampoo): each step against its definition or its implementation's
own, one schedule for Muon's two parts, checkpoints that resume exactly, and `fishleg-tune
train` with each through the built-in loop."""

import io

import pytest
import pytorch_optimizer
import torch
from torch import nn

from tests.tuning.test_training import read_metrics, strip_time, write_config
from tuning.cli import main
from tuning.run.optimizers import MuonConfig, ShampooConfig, SOAPConfig, muon_split

RIVALS = [MuonConfig(lr=0.05, adamw_lr=1e-2), SOAPConfig(precondition_frequency=2), ShampooConfig(lr=1e-2)]


class TinyLM(nn.Module):
    """An embedding, two hidden matrices with biases, a LayerNorm and a head."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(7, 6)
        self.hidden = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 6))
        self.norm = nn.LayerNorm(6)
        self.head = nn.Linear(6, 7)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.hidden(self.embed(tokens))))


def tiny(seed: int = 0) -> TinyLM:
    torch.manual_seed(seed)
    return TinyLM()


def train(model: nn.Module, opt: torch.optim.Optimizer, steps: range) -> None:
    tokens = torch.randint(7, (64,), generator=torch.Generator().manual_seed(5))
    for step in steps:
        x, y = tokens[step : step + 8], tokens[step + 1 : step + 9]
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


def test_muon_takes_hidden_matrices_and_adamw_the_rest():
    model = tiny()
    muon, adamw = muon_split(model)
    assert [id(p) for p in muon] == [id(model.hidden[0].weight), id(model.hidden[2].weight)]
    rest = {id(p) for p in model.parameters()} - {id(p) for p in muon}
    assert {id(p) for p in adamw} == rest and len(adamw) == 7


def test_a_muon_step_is_torchs_muon_and_adamw_and_orthogonalises_the_gradient():
    """The hidden matrices take torch.optim.Muon's step, everything else torch.optim.AdamW's,
    each built directly. Muon's step is the definition's: from B₀ = 0 the update is NS(G)
    scaled, and NS(G) = U S' Vᵀ for G = U S Vᵀ, with S' near 1 (Newton–Schulz in bfloat16 lands
    in about [0.5, 1.5]): W ← W(1 − ηλ) − η·√max(1, rows/cols)·U S' Vᵀ."""
    cfg = MuonConfig(lr=0.05, weight_decay=0.1, momentum=0.9, adamw_lr=1e-2)
    model, twin = tiny(), tiny()
    opt = cfg.build(model)
    muon_params, adamw_params = muon_split(twin)
    muon = torch.optim.Muon(muon_params, lr=0.05, weight_decay=0.1, momentum=0.9, nesterov=True)
    adamw = torch.optim.AdamW(adamw_params, lr=1e-2, betas=(0.9, 0.95), eps=1e-10, weight_decay=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    train(model, opt, range(1))
    train(twin, _Both(muon, adamw), range(1))
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    for p, w in zip(model.parameters(), before, strict=True):
        if any(p is q for q in muon_split(model)[0]):
            rows, cols = w.shape
            step = (w * (1 - 0.05 * 0.1) - p.detach()) / (0.05 * max(1, rows / cols) ** 0.5)
            u, _, vh = torch.linalg.svd(p.grad, full_matrices=False)
            core = u.T @ step @ vh.T
            off = core - torch.diag(torch.diagonal(core))
            assert off.norm() < 0.1 * core.norm() and torch.diagonal(core).min() > 0.4
            assert torch.diagonal(core).max() < 1.6


class _Both(torch.optim.SGD):
    """Two optimizers stepped as one (for the comparison above)."""

    def __init__(self, *parts: torch.optim.Optimizer) -> None:
        super().__init__([p for opt in parts for g in opt.param_groups for p in g["params"]], lr=0.0)
        self.parts = parts

    def step(self, closure=None):
        for opt in self.parts:
            opt.step()


def test_one_scheduler_scales_both_parts_of_muon():
    opt = MuonConfig(lr=0.02, adamw_lr=3e-4).build(tiny())
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5**step)
    opt.step()
    scheduler.step()
    assert [g["lr"] for g in opt.muon.param_groups + opt.partner.param_groups] == [0.01, 1.5e-4]


@pytest.mark.parametrize("cfg", [SOAPConfig(precondition_frequency=2), ShampooConfig(lr=1e-2)], ids=["soap", "shampoo"])
def test_soap_and_shampoo_step_as_the_implementation_constructed_directly(cfg):
    model, twin = tiny(), tiny()
    direct = type(cfg).optimizer_class()(twin.parameters(), **cfg.model_dump(exclude={"name"}))
    train(model, cfg.build(model), range(5))
    train(twin, direct, range(5))
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    assert isinstance(direct, (pytorch_optimizer.SOAP, pytorch_optimizer.Shampoo))


def test_a_shampoo_step_is_its_definition():
    """Gupta et al. 2018 (momentum 0): per matrix W, L = εI + Σ GGᵀ and R = εI + Σ GᵀG over the
    steps so far, W ← W − η L^{-1/4} G R^{-1/4}; per vector, P = εI + Σ ggᵀ, w ← w − η P^{-1/2} g."""
    eps, lr = 1e-2, 1e-2
    model = tiny()
    opt = ShampooConfig(lr=lr, matrix_eps=eps).build(model)

    def root(m: torch.Tensor, p: float) -> torch.Tensor:
        values, vectors = torch.linalg.eigh(m.double())
        return (vectors * values.pow(-1 / p)) @ vectors.T

    sums = [None] * len(list(model.parameters()))
    for step in range(3):
        before = [p.detach().clone() for p in model.parameters()]
        train(model, opt, range(step, step + 1))
        for i, (p, w) in enumerate(zip(model.parameters(), before, strict=True)):
            g = p.grad.double()  # the gradient at `before` (momentum 0: the step leaves p.grad as it was)
            if p.ndim == 2:
                left, right = g @ g.T, g.T @ g
                sums[i] = (left, right) if sums[i] is None else (sums[i][0] + left, sums[i][1] + right)
                eye_l, eye_r = torch.eye(len(left)), torch.eye(len(right))
                update = root(eps * eye_l + sums[i][0], 4) @ g @ root(eps * eye_r + sums[i][1], 4)
            else:
                outer = torch.outer(g, g)
                sums[i] = outer if sums[i] is None else sums[i] + outer
                update = root(eps * torch.eye(len(g)) + sums[i], 2) @ g
            torch.testing.assert_close(p.detach().double(), w.double() - lr * update, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cfg", RIVALS, ids=lambda c: c.name)
def test_a_checkpoint_resumes_exactly(cfg):
    model = tiny()
    opt = cfg.build(model)
    train(model, opt, range(3))
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, buffer)
    train(model, opt, range(3, 7))
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    resumed = tiny(seed=1)
    resumed.load_state_dict(saved["model"])
    resumed_opt = cfg.build(resumed)
    resumed_opt.load_state_dict(saved["optimizer"])
    train(resumed, resumed_opt, range(3, 7))
    for p, q in zip(model.parameters(), resumed.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


@pytest.mark.parametrize(
    "optimizer",
    [{"name": "muon", "lr": 0.02, "adamw_lr": 3e-3}, {"name": "soap", "lr": 3e-3}, {"name": "shampoo", "lr": 0.03}],
    ids=lambda o: o["name"],
)
def test_train_with_a_rival_and_resume(tmp_path, optimizer):
    cfg = write_config(tmp_path / "c.yaml", optimizer=optimizer, epochs=2)
    assert main(["train", str(cfg), "--output", str(tmp_path / "full")]) == 0
    full = read_metrics(tmp_path / "full")
    assert full[1]["val_loss"] < full[0]["val_loss"] < 2.3  # below chance (ln 10) and falling
    assert main(["train", str(cfg), "--output", str(tmp_path / "part"), "--epochs", "1"]) == 0
    assert main(["train", str(cfg), "--output", str(tmp_path / "part"), "--resume"]) == 0
    assert strip_time(read_metrics(tmp_path / "part")) == strip_time(full)
