"""FishLeg on a CUDA device: where λ and the buffers live, the same maths as on the CPU,
autocast, and a short training run. Skipped without a GPU (`benchmarks/gpu_check.sh` runs
them where one is lent)."""

import pytest
import torch
from torch import nn

from fishleg import FishLeg
from fishleg.likelihoods import CategoricalLikelihood

pytestmark = pytest.mark.cuda
CUDA = torch.device("cuda")


def problem(device: torch.device, q_structure: str) -> tuple[nn.Module, FishLeg, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 5)).to(device)
    x = torch.randn(64, 12, generator=torch.Generator().manual_seed(1)).to(device)
    y = torch.randint(0, 5, (64,), generator=torch.Generator().manual_seed(2)).to(device)
    opt = FishLeg(
        model,
        CategoricalLikelihood(),
        x,
        lr=0.05,
        q_structure=q_structure,
        update_aux_every=1,
        aux_batch_size=16,
        seed=0,
    )
    return model, opt, x, y


def train(model: nn.Module, opt: FishLeg, x: torch.Tensor, y: torch.Tensor, steps: int, autocast: bool = False) -> None:
    for _ in range(steps):
        opt.zero_grad()
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=autocast):
            loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()


@pytest.mark.parametrize("q_structure", ["diag", "kron", "kron_diag", "kron_sum"])
def test_lambda_and_buffers_live_on_the_model_device(q_structure):
    model, opt, x, y = problem(CUDA, q_structure)
    train(model, opt, x, y, 2)
    for block in opt.curvature.blocks:
        assert all(t.device.type == "cuda" for t in block.structure.params)
        assert block.grad.device.type == "cuda" and block.qg.device.type == "cuda"
    assert all(v.device.type == "cuda" for s in opt.state.values() for v in s.values() if torch.is_tensor(v))


@pytest.mark.parametrize("q_structure", ["diag", "kron", "kron_diag", "kron_sum"])
def test_cuda_steps_match_cpu_steps(q_structure):
    cpu_model, cpu_opt, x, y = problem(torch.device("cpu"), q_structure)
    gpu_model, gpu_opt, _, _ = problem(CUDA, q_structure)
    train(cpu_model, cpu_opt, x, y, 5)
    train(gpu_model, gpu_opt, x.to(CUDA), y.to(CUDA), 5)
    for a, b in zip(cpu_model.parameters(), gpu_model.parameters()):
        torch.testing.assert_close(b.cpu(), a, rtol=1e-3, atol=1e-4)
    g = [torch.randn_like(p) for p in cpu_model.parameters()]
    for a, b in zip(cpu_opt.apply_q(g), gpu_opt.apply_q([t.to(CUDA) for t in g])):
        torch.testing.assert_close(b.cpu(), a, rtol=1e-3, atol=1e-4)


def test_training_under_autocast_stays_finite_and_learns():
    model, opt, x, y = problem(CUDA, "kron")
    before = nn.functional.cross_entropy(model(x), y).item()
    train(model, opt, x, y, 30, autocast=True)
    assert bool(opt.is_finite())
    assert nn.functional.cross_entropy(model(x), y).item() < before


@pytest.mark.parametrize("step_rule", ["momentum", "quadratic"])
def test_every_early_epoch_option_trains_on_the_gpu(step_rule):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 5)).to(CUDA)
    x, y = torch.randn(64, 12, device=CUDA), torch.randint(0, 5, (64,), device=CUDA)
    opt = FishLeg(
        model, CategoricalLikelihood(), x, damping=0.1, update_aux_every=2, aux_batch_size=16, seed=0,
        q_init="kfac", kfac_every=4, adaptive_damping=True, bound_step=True, warmup_aux_steps=2, dense_aux_steps=3,
        aux_lr_start=1e-3, step_rule=step_rule, lr=1.0 if step_rule == "quadratic" else 0.05,
    )  # fmt: skip

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss

    before = closure().item()
    for _ in range(10):
        opt.step(closure)
    assert opt.damping_rule.scale.device.type == "cuda" and bool(opt.is_finite())
    assert nn.functional.cross_entropy(model(x), y).item() < before


ALL_OPTIONS = {
    "fixed_lr": {"q_structure": "kron"},
    "every_option": {
        "q_structure": "kron_diag", "damping": 0.1, "adaptive_damping": True, "bound_step": True,
        "warmup_aux_steps": 2, "dense_aux_steps": 3, "aux_lr_start": 1e-3, "step_rule": "quadratic", "lr": 1.0,
    },
    "grafted_with_partner": {
        "graft": "adam", "partner": "adamw", "partner_params": "head", "bound_step": True, "warmup_aux_steps": 2,
        "dense_aux_steps": 3, "lr": 1e-3,
    },
}  # fmt: skip


@pytest.mark.parametrize("options", sorted(ALL_OPTIONS))
@pytest.mark.parametrize("q_structure", ["diag", "kron", "kron_diag", "kron_sum"])
def test_step_makes_no_host_sync_on_cuda(q_structure, options):
    """CUDA's own sync check (`torch.cuda.set_sync_debug_mode('error')`) raises on any call that
    waits for the GPU (`.item()`, a device-to-host copy, `nonzero`) inside `step()`."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 5)).to(CUDA)
    x, y = torch.randn(64, 12, device=CUDA), torch.randint(0, 5, (64,), device=CUDA)
    kwargs = {**ALL_OPTIONS[options], "q_structure": q_structure}
    opt = FishLeg(model, CategoricalLikelihood(), x, update_aux_every=2, aux_batch_size=16, seed=0, **kwargs)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss

    opt.step(closure)  # the first step's one-off start (warm-up, K-FAC) may wait for the GPU
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(6):  # aux steps and plain steps, every option's branch
            opt.step(closure)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert bool(opt.is_finite())
