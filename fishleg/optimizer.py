"""FishLeg: θ ← θ − η (m + wd·θ), m ← βm + (1−β) Q(λ) g, with Q(λ) ≈ (F + γI)⁻¹ learnt
by Adam on the auxiliary loss A(λ; u) = ½ uᵀQ(F+γI)Qu − uᵀQu (Garcia et al., FishLeg); or,
with `quadratic_step`, θ ← θ + η(a·Q(λ)g + m·δ₀), a and m from the damped quadratic model
(K-FAC's step, Martens & Grosse 2015)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from pydantic import ValidationError
from torch import Tensor, nn
from typing_extensions import override

from fishleg.aux_data import AuxData, AuxSampler
from fishleg.config import FishLegConfig, describe_validation_error
from fishleg.distributed import broadcast_seed, mean_across_ranks, unwrap
from fishleg.fisher import fisher_gram, fisher_quadratic_form, fisher_vector_product
from fishleg.kfac import Layer, damped_inverse_factors, kronecker_factors
from fishleg.layers import adapter_for
from fishleg.likelihoods import LIKELIHOODS, Likelihood
from fishleg.structures import QSpec, QStructure, build_structure

__all__ = ["Block", "FishLeg", "minimise_quadratic"]

_EXTRA_STATE = "fishleg"


@dataclass(eq=False)
class Block:
    """Parameters that share one Q(λ) block, with preallocated gradient and Q·g buffers and
    their views in the parameters' shapes; the aux step's buffers are made on first use."""

    names: list[str]
    params: list[nn.Parameter]
    structure: QStructure
    split: Callable[[Tensor], list[Tensor]]
    layer: Layer | None = None
    grad: Tensor = field(init=False)
    qg: Tensor = field(init=False)
    grad_views: list[Tensor] = field(init=False)
    qg_views: list[Tensor] = field(init=False)

    def __post_init__(self) -> None:
        device = self.params[0].device
        self.grad = torch.zeros(self.structure.shape, device=device)
        self.qg = torch.zeros(self.structure.shape, device=device)
        self.grad_views = self.split(self.grad)
        self.qg_views = self.split(self.qg)

    def join(self, tensors: Sequence[Tensor]) -> Tensor:
        """Per-parameter tensors → one new block tensor (float32)."""
        out = torch.empty_like(self.grad)
        torch._foreach_copy_(self.split(out), list(tensors))
        return out

    @functools.cached_property
    def residual(self) -> Tensor:
        """(F+γI)Qu − u of the aux step."""
        return torch.empty_like(self.grad)

    @functools.cached_property
    def residual_views(self) -> list[Tensor]:
        """Views of `residual` in the parameters' shapes."""
        return self.split(self.residual)

    @functools.cached_property
    def delta(self) -> Tensor:
        """The parameters before a step minus after it (adaptive damping's −δ)."""
        return torch.empty_like(self.grad)

    @functools.cached_property
    def delta_views(self) -> list[Tensor]:
        """Views of `delta` in the parameters' shapes."""
        return self.split(self.delta)

    @functools.cached_property
    def probe(self) -> Tensor:
        """A Gaussian probe u (u_sampling="gaussian")."""
        return torch.empty_like(self.grad)

    @functools.cached_property
    def probe_q(self) -> Tensor:
        """Q(λ)u for a probe that is not the gradient."""
        return torch.empty_like(self.grad)


def _identity_split(t: Tensor) -> list[Tensor]:
    return [t]


def build_blocks(
    model: nn.Module, config: FishLegConfig, device: torch.device, generator: torch.Generator | None = None
) -> list[Block]:
    """One block per registered layer (chosen structure on [W | b]); a diagonal block for
    every other trainable parameter. Random initial factors come from `generator`."""
    spec = QSpec(init_scale=config.init_scale, rank=config.kron_sum_rank, generator=generator)
    names = {id(p): n for n, p in model.named_parameters()}
    claimed: set[int] = set()
    blocks: list[Block] = []
    for module in model.modules():
        adapter = adapter_for(module)
        if adapter is None:
            continue
        params = adapter.params(module)
        if not all(p.requires_grad for p in params) or any(id(p) in claimed for p in params):
            continue
        structure = build_structure(config.q_structure, adapter.block_shape(module), spec, device)
        split = functools.partial(adapter.split, module)
        blocks.append(Block([names[id(p)] for p in params], params, structure, split, (module, adapter)))
        claimed.update(id(p) for p in params)
    for name, p in model.named_parameters():
        if p.requires_grad and id(p) not in claimed:
            structure = build_structure("diag", tuple(p.shape), spec, device)
            blocks.append(Block([name], [p], structure, _identity_split))
    return blocks


def _global_norm(tensors: Sequence[Tensor]) -> Tensor:
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(list(tensors))))


def _dot(a: Sequence[Tensor], b: Sequence[Tensor]) -> Tensor:
    return torch.stack([torch.vdot(x.flatten(), y.flatten()) for x, y in zip(a, b)]).sum()


def minimise_quadratic(matrix: Tensor, linear: Tensor) -> Tensor:
    """argmin over x of bᵀx + ½xᵀCx for k = 1 or 2 directions, −C⁻¹b, in closed form (no
    solver, no host sync); where C is near-singular (the directions nearly parallel) the
    line search along the first direction alone. matrix C (k, k), linear b (k,) → (k,)."""
    tiny = torch.finfo(matrix.dtype).tiny
    line = -linear[0] / matrix[0, 0].clamp_min(tiny)
    if matrix.shape[0] == 1:
        return line.reshape(1)
    (c00, c01), (c10, c11) = matrix
    det = c00 * c11 - c01 * c10
    solved = torch.stack([c01 * linear[1] - c11 * linear[0], c10 * linear[0] - c00 * linear[1]]) / det.clamp_min(tiny)
    fallback = torch.stack([line, torch.zeros_like(line)])
    return torch.where(det > 1e-6 * c00 * c11, solved, fallback)


class FishLeg(torch.optim.Optimizer):
    """Natural-gradient optimizer with a learnt inverse Fisher, used like torch.optim.AdamW:

    >>> opt = FishLeg(model, CategoricalLikelihood(), aux_data=train_inputs, lr=0.05)
    >>> loss = opt.likelihood.nll(model(x), y); loss.backward(); opt.step()

    model: the network (FishLeg needs the module, not only its parameters: Q(λ) is built per
    layer and the Fisher-vector products run the model). likelihood: a `Likelihood`, or the
    name of a registered one ("categorical", "bernoulli", "gaussian"). aux_data: inputs for the
    λ updates (a tensor, a map-style Dataset or an iterable of batches); every
    `update_aux_every` steps one λ update runs on `aux_batch_size` inputs drawn from it; with
    None, call `update_aux(inputs)` yourself. seed: of aux sampling, Gaussian probes and random
    initial factors (default: derived from torch.initial_seed(), without drawing from torch's
    global generator).

    `lr`, `beta`, `weight_decay` and `damping` live in `param_groups[0]`, so schedulers (and
    adaptive rules) can change them between steps; `aux_lr` lives in
    `aux_optimizer.param_groups`. FishLeg has one parameter group (its blocks span the model).
    With adaptive_damping, γ = param_groups[0]["damping"] × `damping_scale` (a 0-d tensor the
    Levenberg–Marquardt rule moves; `last_rho` is its last reduction ratio), and `step` needs
    a closure, as `torch.optim.LBFGS` does:

    >>> def closure():
    ...     opt.zero_grad(); loss = opt.likelihood.nll(model(x), y); loss.backward(); return loss
    >>> opt.step(closure)

    With quadratic_step, the step's length and momentum come from the damped quadratic model
    on an aux batch, so `lr` = 1 takes the model's minimiser and `beta` is unused.
    """

    def __init__(
        self,
        model: nn.Module,
        likelihood: Likelihood | str,
        aux_data: AuxData | None = None,
        *,
        lr: float = 5e-2,
        aux_lr: float = 1e-4,
        aux_lr_start: float | None = None,
        aux_lr_decay_steps: int = 100,
        aux_batch_size: int = 100,
        damping: float = 0.5,
        update_aux_every: int = 10,
        warmup_aux_steps: int = 0,
        dense_aux_steps: int = 0,
        adaptive_damping: bool = False,
        quadratic_step: bool = False,
        bound_step: bool = False,
        q_init: Literal["identity", "kfac"] = "identity",
        q_structure: str = "kron",
        kron_sum_rank: int = 2,
        beta: float = 0.9,
        weight_decay: float = 1e-5,
        init_scale: float = 1.0,
        aux_betas: tuple[float, float] = (0.9, 0.999),
        aux_eps: float = 1e-8,
        u_sampling: Literal["gradient", "gaussian"] = "gradient",
        normalize_aux: bool = True,
        precondition_aux: bool = True,
        seed: int | None = None,
    ) -> None:
        hyperparameters = {k: v for k, v in locals().items() if k in FishLegConfig.model_fields}
        try:
            config = FishLegConfig(**hyperparameters)
        except ValidationError as err:
            raise ValueError(describe_validation_error(err, "FishLeg")) from None
        trainable = [p for p in model.parameters() if p.requires_grad]
        if not trainable:
            raise ValueError("FishLeg: model has no trainable parameters (requires_grad=True)")
        for option in ("adaptive_damping", "quadratic_step"):
            if getattr(config, option) and aux_data is None:
                raise ValueError(f"FishLeg: {option} needs aux_data (its Fisher quadratic forms run on aux batches)")
        if isinstance(likelihood, str):
            likelihood = LIKELIHOODS[likelihood]()
        if seed is None:
            seed = broadcast_seed(torch.initial_seed() % 2**62, trainable[0].device)
        self.config = config
        self.model = model = unwrap(model)
        self.likelihood = likelihood
        self._device = trainable[0].device
        self.blocks = build_blocks(model, config, self._device, torch.Generator().manual_seed(seed + 2))
        params = [p for b in self.blocks for p in b.params]
        defaults = {"lr": lr, "beta": beta, "weight_decay": weight_decay, "damping": damping}
        super().__init__(params, defaults)
        for p in params:
            self.state[p]["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        self.aux_optimizer = torch.optim.Adam(
            [lam for b in self.blocks for lam in b.structure.params],
            lr=config.aux_lr,
            betas=config.aux_betas,
            eps=config.aux_eps,
            fused=True,  # one kernel over all λ: λ has ~(out² + in²) entries per layer
        )
        self._probe_rng = torch.Generator(device=self._device).manual_seed(seed + 1)
        self.aux_sampler = None if aux_data is None else AuxSampler(aux_data, config.aux_batch_size, self._device, seed)
        self.step_count = 0
        self.aux_step_count = 0
        self.last_aux_loss = torch.full((), float("nan"), device=self._device)
        self.damping_scale = torch.ones((), device=self._device)
        self.last_rho = torch.full((), float("nan"), device=self._device)
        self._flat_params = params
        self._flat_grad_views = [v for b in self.blocks for v in b.grad_views]
        self._flat_qg_views = [v for b in self.blocks for v in b.qg_views]
        self._check_likelihood()

    @classmethod
    def from_config(
        cls,
        model: nn.Module,
        config: FishLegConfig,
        *,
        likelihood: Likelihood | str,
        aux_data: AuxData | None = None,
        seed: int | None = None,
    ) -> FishLeg:
        """Build from a loaded config (e.g. `fishleg.load_config("best_config.yaml")`); a run
        config (anything whose `optimizer` is the FishLeg config) works too."""
        opt_config = getattr(config, "optimizer", config)
        if not isinstance(opt_config, FishLegConfig):
            raise ValueError(
                f"config's optimizer is {getattr(opt_config, 'name', type(opt_config).__name__)!r}, not 'fishleg'; "
                "use config.build_optimizer(model) for baselines"
            )
        return cls(model, likelihood, aux_data, seed=seed, **opt_config.hyperparameters())

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """FishLeg makes its one group from the model; more groups are refused, not ignored."""
        if self.param_groups:
            raise ValueError(
                "FishLeg has one parameter group, built from the model's layers; to train other "
                "parameters with different settings, give them their own optimizer"
            )
        super().add_param_group(param_group)

    def _check_likelihood(self) -> None:
        probe = None if self.aux_sampler is None else self.aux_sampler.peek()
        if probe is None:
            return
        buffers = {n: b.clone() for n, b in self.model.named_buffers()}
        devices = [self._device] if self._device.type == "cuda" else []
        with torch.no_grad(), torch.random.fork_rng(devices=devices, device_type=self._device.type):
            outputs = torch.func.functional_call(self.model, buffers, (probe,))
        self.likelihood.check_outputs(outputs)

    # ---------------------------------------------------------------- parameter step
    @override
    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with torch.autocast(self._device.type, enabled=False):
            self.step_count += 1
            adapt = self.config.adaptive_damping and self.step_count % self.config.update_aux_every == 0
            if adapt and loss is None:
                raise ValueError(
                    "FishLeg: adaptive_damping needs step(closure), a closure that zeroes the gradients, "
                    "computes the loss, calls backward() and returns the loss"
                )
            blocks = self._gather_grads()
            if self.step_count == 1 and self.aux_sampler is not None:
                self._start(blocks)
            for b in blocks:
                b.structure.apply_cached(b.grad, out=b.qg)
            if self.aux_sampler is not None and self._aux_due():
                inputs = self.aux_sampler.draw()
                if self.config.u_sampling == "gradient":
                    self._aux_update(blocks, inputs, [b.grad for b in blocks], [b.qg for b in blocks])
                else:
                    self._aux_update(self.blocks, inputs, self._gaussian_probes(self.blocks))
            if self.config.bound_step:
                self._bound_steps(blocks)
            if self.config.quadratic_step:
                predicted = self._quadratic_update(blocks)
            else:
                if adapt:
                    torch._foreach_copy_([v for b in blocks for v in b.delta_views], self._flat(blocks)[0])
                self._update_params(blocks)
                predicted = self._predicted_change(blocks) if adapt else None
            if adapt:
                self._adapt_damping(loss, predicted, closure)
        return loss

    def _bound_steps(self, blocks: list[Block]) -> None:
        """Q·g ← Q·g · min(1, ‖g‖ / (γ‖Q·g‖)) per block (`bound_step`), on tensors."""
        gamma = self.param_groups[0]["damping"] * self.damping_scale
        limit = torch.stack(torch._foreach_norm([b.grad for b in blocks])) / gamma
        length = torch.stack(torch._foreach_norm([b.qg for b in blocks])).clamp_min(torch.finfo(torch.float32).tiny)
        torch._foreach_mul_([b.qg for b in blocks], list((limit / length).clamp_max(1.0).unbind()))

    def _predicted_change(self, blocks: list[Block]) -> Tensor:
        """gᵀδ + ½δᵀFδ for the step just taken, F on an aux batch (`delta` holds the parameters
        from before it, and −δ after this)."""
        deltas = [b.delta for b in blocks]
        torch._foreach_sub_([v for b in blocks for v in b.delta_views], self._flat(blocks)[0])
        params = {n: p.detach() for b in blocks for n, p in zip(b.names, b.params)}
        tangents = {n: t for b in blocks for n, t in zip(b.names, b.delta_views)}
        curvature = fisher_quadratic_form(self.model, self.likelihood, self.aux_sampler.draw(), params, tangents)
        return 0.5 * curvature - _dot([b.grad for b in blocks], deltas)

    def _adapt_damping(self, loss: Tensor, predicted: Tensor, closure: Callable[[], Tensor]) -> None:
        """K-FAC's Levenberg–Marquardt rule (Martens & Grosse, 2015, §6.5): ρ = (h(θ+δ) − h(θ)) /
        (gᵀδ + ½δᵀFδ), the loss change over the quadratic model's (`predicted`), on the step's
        batch (the closure, called again); the damping scale shrinks by
        ω = (19/20)^update_aux_every if ρ > 3/4 and grows by 1/ω if ρ < 1/4, or if the model
        predicts no decrease or the loss is not finite. On tensors: no host sync."""
        with torch.enable_grad():
            new_loss = closure()
        change = new_loss.detach() - loss.detach()
        mean_across_ranks([change, predicted])  # ρ of the global batch, the same γ on every rank
        rho = change / predicted
        omega = (19 / 20) ** self.config.update_aux_every
        descent = predicted < 0
        shrink = descent & (rho > 0.75)
        grow = ~(descent & (rho >= 0.25))  # also when ρ is NaN
        factor = torch.where(shrink, omega, torch.where(grow, 1 / omega, 1.0))
        self.damping_scale.mul_(factor).clamp_(1e-6, 1e6)
        self.last_rho = rho

    def _quadratic_update(self, blocks: list[Block]) -> Tensor:
        """θ ← θ + δ with δ = lr·(a·Q·g + m·δ₀) (`quadratic_step`): (a, m) minimise the damped
        model gᵀδ + ½δᵀ(F + γI)δ, F on an aux batch, δ₀ the last step (kept in the momentum
        buffers). Returns the undamped model's value gᵀδ + ½δᵀFδ, adaptive damping's
        prediction. On tensors: no host sync."""
        params, qgs, grads = self._flat(blocks)
        names = [n for b in blocks for n in b.names]
        last = [self.state[p]["momentum_buffer"] for p in params]
        directions = [qgs] if self.step_count == 1 else [qgs, last]  # no last step yet: a line search
        curvature = fisher_gram(
            self.model,
            self.likelihood,
            self.aux_sampler.draw(),
            {n: p.detach() for n, p in zip(names, params)},
            [dict(zip(names, d)) for d in directions],
        )
        mean_across_ranks([curvature])
        overlap = torch.stack([torch.stack([_dot(a, b) for b in directions]) for a in directions])
        slope = torch.stack([_dot(grads, d) for d in directions])
        gamma = self.param_groups[0]["damping"] * self.damping_scale
        coefficients = self.param_groups[0]["lr"] * minimise_quadratic(curvature + gamma * overlap, slope)
        if len(directions) == 1:
            torch._foreach_zero_(last)
        else:
            torch._foreach_mul_(last, coefficients[1])
        torch._foreach_addcmul_(last, qgs, [coefficients[0]] * len(qgs))
        wd = self.param_groups[0]["weight_decay"]
        if wd != 0:
            torch._foreach_mul_(params, 1 - self.param_groups[0]["lr"] * wd)
        torch._foreach_add_(params, last)
        return slope @ coefficients + 0.5 * coefficients @ curvature @ coefficients

    def _aux_due(self) -> bool:
        """Whether this parameter step gets a λ update (a Python-side count: no host sync)."""
        return self.step_count <= self.config.dense_aux_steps or self.step_count % self.config.update_aux_every == 0

    def _start(self, blocks: list[Block]) -> None:
        """Before the first parameter step: Q at K-FAC's estimate (q_init="kfac"), then
        `warmup_aux_steps` λ updates on fresh auxiliary batches, with the probes the aux steps
        use (this first gradient, or Gaussian)."""
        if self.config.q_init == "kfac":
            self.initialize_q(self.aux_sampler.draw())
        for _ in range(self.config.warmup_aux_steps):
            inputs = self.aux_sampler.draw()
            if self.config.u_sampling == "gradient":
                self._aux_update(blocks, inputs, [b.grad for b in blocks])
            else:
                self._aux_update(self.blocks, inputs, self._gaussian_probes(self.blocks))

    @torch.no_grad()
    def initialize_q(self, inputs: Tensor) -> None:
        """Start Q(λ) of each Kronecker block at K-FAC's damped inverse estimated on a batch of
        inputs (`fishleg.kfac`), with γ = param_groups[0]["damping"]; blocks whose structure or
        layer has no Kronecker form keep their Q. `step` calls it once, before the first
        parameter step, when q_init="kfac" and aux_data was given."""
        blocks = [b for b in self.blocks if b.layer is not None and b.structure.kronecker_init]
        factors = kronecker_factors(
            self.model, self.likelihood, inputs.to(self._device), [b.layer for b in blocks], self._probe_rng
        )
        mean_across_ranks([f for found in factors if found is not None for f in found])
        damping = self.param_groups[0]["damping"] * self.damping_scale
        for b, found in zip(blocks, factors):
            if found is not None:
                b.structure.set_kronecker(*damped_inverse_factors(*found, damping))

    def _gather_grads(self) -> list[Block]:
        """Copy gradients into the block buffers; returns the blocks that have any."""
        if all(p.grad is not None for p in self._flat_params):
            torch._foreach_copy_(self._flat_grad_views, [p.grad for p in self._flat_params])
            return self.blocks
        live = []
        for b in self.blocks:
            if all(p.grad is None for p in b.params):
                continue
            live.append(b)
            for view, p in zip(b.grad_views, b.params):
                view.zero_() if p.grad is None else view.copy_(p.grad)
        return live

    def _flat(self, blocks: list[Block]) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """(parameters, their Q·g views, their gradient views) of `blocks`, flattened in block
        order; the lists built once in __init__ when `blocks` is every block (the usual step)."""
        if blocks is self.blocks:
            return self._flat_params, self._flat_qg_views, self._flat_grad_views
        params = [p for b in blocks for p in b.params]
        return params, [v for b in blocks for v in b.qg_views], [v for b in blocks for v in b.grad_views]

    def _update_params(self, blocks: list[Block]) -> None:
        params, qgs, _ = self._flat(blocks)
        group = self.param_groups[0]
        lr, beta, wd = group["lr"], group["beta"], group["weight_decay"]
        moms = [self.state[p]["momentum_buffer"] for p in params]
        if wd != 0:
            torch._foreach_mul_(params, 1 - lr * wd)
        torch._foreach_mul_(moms, beta)
        torch._foreach_add_(moms, qgs, alpha=1 - beta)
        torch._foreach_add_(params, moms, alpha=-lr)

    # ---------------------------------------------------------------- auxiliary loop
    def _gaussian_probes(self, blocks: Sequence[Block]) -> list[Tensor]:
        return [b.probe.normal_(generator=self._probe_rng) for b in blocks]

    def aux_gradients(
        self,
        blocks: Sequence[Block],
        inputs: Tensor,
        probes: Sequence[Tensor],
        qu: Sequence[Tensor] | None = None,
    ) -> tuple[list[Tensor], Tensor]:
        """∂A/∂λ for each λ of `blocks` and the aux loss A(λ; u).

        probes: one tensor per block, in block shape; qu: Q(λ)u if already known (the
        parameter step's Q·g when u is the gradient). Uses ∂A/∂λ = ∂⟨Q(λ)u, sg(r)⟩/∂λ with
        r = (F+γI)Qu − u (γ = param_groups[0]["damping"] × damping_scale), optionally preconditioned by Q and
        divided by ‖Qu‖·‖u‖. The gradients may be the structures' workspaces: use them before
        the next call."""
        cfg = self.config
        v = list(qu) if qu is not None else [b.structure.apply_cached(u, b.probe_q) for b, u in zip(blocks, probes)]
        params = {n: p.detach() for b in blocks for n, p in zip(b.names, b.params)}
        tangents = {n: t for b, vb in zip(blocks, v) for n, t in zip(b.names, b.split(vb))}
        fv, _ = fisher_vector_product(self.model, self.likelihood, inputs, params, tangents)
        for b in blocks:
            torch._foreach_copy_(b.residual_views, [fv[n] for n in b.names])
        residual = [b.residual for b in blocks]
        torch._foreach_addcmul_(residual, v, [self.damping_scale] * len(v), value=self.param_groups[0]["damping"])
        aux_loss = 0.5 * _dot(v, residual) - _dot(probes, v)
        torch._foreach_sub_(residual, list(probes))
        if cfg.normalize_aux:
            scale = (_global_norm(v) * _global_norm(probes)).clamp_min(torch.finfo(torch.float32).tiny)
            torch._foreach_div_(residual, scale)
        grads = [
            g
            for b, u, r in zip(blocks, probes, residual)
            for g in b.structure.lambda_grad(u, r, precondition=cfg.precondition_aux)
        ]
        return grads, aux_loss

    def _aux_update(
        self,
        blocks: Sequence[Block],
        inputs: Tensor,
        probes: Sequence[Tensor],
        qu: Sequence[Tensor] | None = None,
    ) -> None:
        """One Adam step on λ of `blocks`."""
        grads, aux_loss = self.aux_gradients(blocks, inputs, probes, qu)
        mean_across_ranks([*grads, aux_loss])  # each rank's aux batch counts; λ stays the same on all
        lambdas = [lam for b in blocks for lam in b.structure.params]
        for lam, g in zip(lambdas, grads):
            lam.grad = g
        if self.config.aux_lr_start is not None:
            self.aux_optimizer.param_groups[0]["lr"] = self.scheduled_aux_lr(self.aux_step_count)
        self.aux_optimizer.step()
        self.aux_optimizer.zero_grad(set_to_none=True)
        for b in blocks:
            b.structure.refresh()
        self.last_aux_loss = aux_loss.detach()
        self.aux_step_count += 1

    def scheduled_aux_lr(self, aux_step: int) -> float:
        """The aux_lr of λ update number `aux_step` (from 0) under aux_lr_start: geometric from
        aux_lr_start to aux_lr over aux_lr_decay_steps updates, then aux_lr."""
        cfg = self.config
        done = min(aux_step / cfg.aux_lr_decay_steps, 1.0)
        return cfg.aux_lr_start ** (1 - done) * cfg.aux_lr**done

    def _per_block(self, tensors: Sequence[Tensor]) -> list[Tensor]:
        if len(tensors) != len(self._flat_params):
            raise ValueError(f"expected one tensor per parameter ({len(self._flat_params)}), got {len(tensors)}")
        it = iter(tensors)
        return [b.join([next(it) for _ in b.params]) for b in self.blocks]

    @torch.no_grad()
    def update_aux(self, inputs: Tensor, u: Sequence[Tensor] | None = None) -> Tensor:
        """One λ update on a batch of inputs. u: one probe per parameter (in `param_groups`
        order); by default the current gradients (`u_sampling="gradient"`) or N(0, I)."""
        if u is None and self.config.u_sampling == "gradient":
            if any(p.grad is None for p in self._flat_params):
                raise ValueError("update_aux: no gradients yet; call backward() first or pass u")
            u = [p.grad for p in self._flat_params]
        probes = self._gaussian_probes(self.blocks) if u is None else self._per_block(u)
        with torch.autocast(self._device.type, enabled=False):
            self._aux_update(self.blocks, inputs.to(self._device), probes)
        return self.last_aux_loss

    @torch.no_grad()
    def apply_q(self, tensors: Sequence[Tensor]) -> list[Tensor]:
        """Q(λ) applied to one tensor per parameter (in `param_groups` order)."""
        out = []
        for b, block_in in zip(self.blocks, self._per_block(tensors)):
            out.extend(t.clone() for t in b.split(b.structure.apply_cached(block_in, torch.empty_like(block_in))))
        return out

    def is_finite(self) -> Tensor:
        """Whether every λ is finite, as a 0-d bool tensor: no host sync here, so a training loop
        reads it when it chooses (e.g. once per epoch) to stop a run whose Q has broken down."""
        return torch.stack([torch.isfinite(lam).all() for b in self.blocks for lam in b.structure.params]).all()

    # ---------------------------------------------------------------- checkpointing
    @override
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state[_EXTRA_STATE] = {
            "lambda": [lam.detach().clone() for b in self.blocks for lam in b.structure.params],
            "aux_optimizer": self.aux_optimizer.state_dict(),
            "step_count": self.step_count,
            "aux_step_count": self.aux_step_count,
            "last_aux_loss": self.last_aux_loss.clone(),
            "damping_scale": self.damping_scale.clone(),
            "last_rho": self.last_rho.clone(),
            "probe_rng": self._probe_rng.get_state(),
            "aux_sampler": None if self.aux_sampler is None else self.aux_sampler.state_dict(),
        }
        return state

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        extra = state_dict.pop(_EXTRA_STATE)
        super().load_state_dict(state_dict)
        with torch.no_grad():
            lambdas = [lam for b in self.blocks for lam in b.structure.params]
            if len(lambdas) != len(extra["lambda"]):
                raise ValueError("FishLeg.load_state_dict: λ count differs (another model or q_structure?)")
            torch._foreach_copy_(lambdas, [t.to(self._device) for t in extra["lambda"]])
        self.aux_optimizer.load_state_dict(extra["aux_optimizer"])
        for b in self.blocks:
            b.structure.refresh()
        self.step_count = extra["step_count"]
        self.aux_step_count = extra["aux_step_count"]
        self.last_aux_loss = extra["last_aux_loss"].to(self._device)
        self.damping_scale.copy_(extra["damping_scale"])
        self.last_rho = extra["last_rho"].to(self._device)
        self._probe_rng.set_state(extra["probe_rng"])
        if self.aux_sampler is not None and extra["aux_sampler"] is not None:
            self.aux_sampler.load_state_dict(extra["aux_sampler"])


def _hyperparameter_doc() -> str:
    """The constructor's hyperparameters with defaults, from FishLegConfig's field descriptions
    (their one place), for `help(FishLeg)`."""
    lines = ["", "Hyperparameters (keyword-only; validated by `FishLegConfig`):"]
    for name, field_info in FishLegConfig.model_fields.items():
        if name != "name":
            lines.append(f"    {name} = {field_info.default!r}: {field_info.description}")
    return "\n".join(lines)


FishLeg.__doc__ = (FishLeg.__doc__ or "") + _hyperparameter_doc()
