"""FishLeg: θ ← θ − η (m + wd·θ), m ← βm + (1−β) Q(λ) g, with Q(λ) ≈ (F + γI)⁻¹ learnt
by Adam on the auxiliary loss A(λ; u) = ½ uᵀQ(F+γI)Qu − uᵀQu (Garcia et al., FishLeg); or,
with `step_rule="quadratic"`, θ ← θ + η(a·Q(λ)g + m·δ₀), a and m from the damped quadratic model
(K-FAC's step, Martens & Grosse 2015).

The optimizer composes its parts, each in its own module: the curvature (`Curvature`: the
blocks' λ and the aux loop that learns them), the damping strategy (`Damping`: γ), the step
rule (`StepRule`: what a step does with Q·g), the graft (`Graft`: a first-order method's step
length, if asked) and a first-order partner (AdamW) for the parameters Q does not suit, if asked.
`fishleg.parts` builds each from its own options (and refuses a config whose parts need aux
batches that nothing feeds); `step` runs them in order, and checkpoints loop over them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from typing_extensions import override

from fishleg.blocks import Block, build_blocks
from fishleg.config import FishLegConfig
from fishleg.curvature.aux_data import AuxData
from fishleg.curvature.fisher import AuxFisher
from fishleg.distributed import broadcast_seed, unwrap
from fishleg.likelihoods import LIKELIHOODS, Likelihood
from fishleg.parts import (
    Stateful,
    build_curvature,
    build_damping,
    build_graft,
    build_partner,
    build_sampler,
)
from fishleg.step.partner import partner_parameters
from fishleg.step.rules import STEP_RULES, StepContext, bound_steps
from fishleg.step.schedules import at_step
from fishleg.structures import QSpec

__all__ = ["FishLeg"]

_EXTRA_STATE = "fishleg"
_SCHEDULED = ("lr", "damping")  # the group's hyperparameters that may be schedules of the step


def _block_index(blocks: list[Block], device: torch.device) -> Tensor:
    """Each parameter's block, as its index in `blocks` (n_params,)."""
    return torch.tensor([i for i, b in enumerate(blocks) for _ in b.params], device=device)


class FishLeg(torch.optim.Optimizer):
    """Natural-gradient optimizer with a learnt inverse Fisher, used like torch.optim.AdamW:

    >>> opt = FishLeg(model, CategoricalLikelihood(), aux_data=train_inputs, lr=0.05)
    >>> loss = opt.likelihood.nll(model(x), y); loss.backward(); opt.step()

    model: the network (FishLeg needs the module, not only its parameters: Q(λ) is built per
    layer and the Fisher-vector products run the model). likelihood: a `Likelihood`, or the
    name of a registered one ("categorical", "bernoulli", "gaussian"). aux_data: inputs for the
    λ updates (a tensor, a map-style Dataset or an iterable of batches); every
    `update_aux_every` steps one λ update runs on `aux_batch_size` inputs drawn from it; with
    "manual", call `update_aux(inputs)` yourself (None is refused while `learn_q` is on).
    config: a `FishLegConfig` (e.g. loaded with `fishleg.load_config`); keyword
    hyperparameters, listed below with their defaults, override its values (FishLegConfig
    declares and validates them: it is their one list). seed: of aux sampling, Gaussian probes
    and random initial factors (default: derived from torch.initial_seed(), without drawing
    from torch's global generator).

    `lr`, `beta`, `weight_decay` and `damping` live in `param_groups[0]`, so schedulers (and
    adaptive rules) can change them between steps; `lr`, `damping` and `update_aux_every` also
    take a schedule, a callable of the step (from 1), which sets the group's value before each
    step (`fishleg.step.schedules`). `aux_lr` lives in `curvature.aux_optimizer.param_groups`.
    FishLeg has one parameter group (its blocks, `curvature.blocks`, span the model). With
    adaptive_damping, γ = param_groups[0]["damping"] × `damping_rule.scale` (a 0-d tensor the
    Levenberg–Marquardt rule moves; `damping_rule.last_rho` is its last reduction ratio), and
    `step` needs a closure, as `torch.optim.LBFGS` does:

    >>> def closure():
    ...     opt.zero_grad(); loss = opt.likelihood.nll(model(x), y); loss.backward(); return loss
    >>> opt.step(closure)

    With step_rule="quadratic", the step's length and momentum come from the damped quadratic model
    on an aux batch, so `lr` = 1 takes the model's minimiser and `beta` is unused.
    """

    def __init__(
        self,
        model: nn.Module,
        likelihood: Likelihood | str,
        aux_data: AuxData | str | None = None,
        config: FishLegConfig | None = None,
        *,
        seed: int | None = None,
        **hyperparameters: Any,
    ) -> None:
        config = FishLegConfig.merged(config, hyperparameters, "FishLeg")
        trainable = [p for p in model.parameters() if p.requires_grad]
        if not trainable:
            raise ValueError("FishLeg: model has no trainable parameters (requires_grad=True)")
        partnered = [] if config.partner == "none" else partner_parameters(unwrap(model), config.partner_params)
        if len(partnered) == len(trainable):
            raise ValueError(f"FishLeg: partner_params {config.partner_params!r} covers every trainable parameter")
        if isinstance(likelihood, str):
            likelihood = LIKELIHOODS[likelihood]()
        if seed is None:
            seed = broadcast_seed(torch.initial_seed() % 2**62, trainable[0].device)
        self.config = config
        self.model = model = unwrap(model)
        self.likelihood = likelihood
        self._device = trainable[0].device
        spec = QSpec(
            init_scale=config.init_scale, rank=config.kron_sum_rank, generator=torch.Generator().manual_seed(seed + 2)
        )
        blocks = build_blocks(model, config.q_structure, spec, self._device, partnered)
        params = [p for b in blocks for p in b.params]
        defaults = {
            "lr": at_step(config.lr, 1),
            "beta": config.beta,
            "weight_decay": config.weight_decay,
            "damping": at_step(config.damping, 1),
        }
        super().__init__(params, defaults)
        self._schedules = {name: getattr(config, name) for name in _SCHEDULED if callable(getattr(config, name))}
        self.graft = build_graft(config)
        for p in params:
            self.state[p]["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            if self.graft is not None:
                self.graft.init_state(self.state[p], p)
        self.partner = build_partner(config, partnered, self.param_groups[0])
        self.damping_rule = build_damping(config, self.param_groups[0], self._device)
        self.rule = STEP_RULES[config.step_rule](self.graft)
        sampler = build_sampler(config, aux_data, self.rule, self.damping_rule, self._device, seed)
        self._fisher = None if sampler is None else AuxFisher(model, likelihood, sampler)
        self.curvature = build_curvature(
            config, model, likelihood, blocks, self.damping_rule, sampler, seed, self._device
        )
        self.step_count = 0
        self._flat_params = params
        self._flat_grad_views = [v for b in blocks for v in b.grad_views]
        self._flat_qg_views = [v for b in blocks for v in b.qg_views]
        self._bind_state()
        self._block_of = _block_index(blocks, self._device)
        self.curvature.check_likelihood()

    @classmethod
    def from_config(
        cls,
        model: nn.Module,
        config: FishLegConfig,
        *,
        likelihood: Likelihood | str,
        aux_data: AuxData | str | None = None,
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
        return cls(model, likelihood, aux_data, opt_config, seed=seed)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """FishLeg makes its one group from the model; more groups are refused, not ignored."""
        if self.param_groups:
            raise ValueError(
                "FishLeg has one parameter group, built from the model's layers; to train other "
                "parameters with different settings, give them their own optimizer"
            )
        super().add_param_group(param_group)

    # ---------------------------------------------------------------- parameter step
    @override
    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        if closure is None and self.damping_rule.needs_closure:
            raise ValueError(
                "FishLeg: adaptive_damping needs step(closure), a closure that zeroes the gradients, "
                "computes the loss, calls backward() and returns the loss"
            )
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with torch.autocast(self._device.type, enabled=False):
            self.step_count += 1
            group = self.param_groups[0]
            for name, schedule in self._schedules.items():
                group[name] = schedule(self.step_count)
            blocks = self._gather_grads()
            curvature = self.curvature
            curvature.before_step(blocks, self.step_count)
            curvature.precondition(blocks)
            curvature.maybe_update(blocks, self.step_count)
            if self.config.bound_step:
                bound_steps(blocks, self.damping_rule.gamma())
            adapt = self.damping_rule.due(self.step_count)
            predicted = self.rule.apply(self._context(blocks), predict=adapt)
            if self.partner is not None:
                self.partner.step()
            if adapt:
                with torch.enable_grad():
                    new_loss = closure()
                self.damping_rule.adapt(new_loss.detach() - loss.detach(), predicted)
        return loss

    @override
    def zero_grad(self, set_to_none: bool = True) -> None:
        super().zero_grad(set_to_none)
        if self.partner is not None:
            self.partner.zero_grad(set_to_none)

    def _context(self, blocks: list[Block]) -> StepContext:
        """The step rule's view of this step; the flat lists are built once in __init__ when
        `blocks` is every block (the usual step)."""
        if blocks is self.curvature.blocks:
            params, qgs, grads = self._flat_params, self._flat_qg_views, self._flat_grad_views
            states, buffers, block_of = self._states, self._buffers, self._block_of
        else:
            params = [p for b in blocks for p in b.params]
            qgs = [v for b in blocks for v in b.qg_views]
            grads = [v for b in blocks for v in b.grad_views]
            states = [self.state[p] for p in params]
            buffers = [s["momentum_buffer"] for s in states]
            block_of = _block_index(blocks, self._device)
        return StepContext(
            blocks=blocks,
            params=params,
            qgs=qgs,
            grads=grads,
            buffers=buffers,
            states=states,
            block_of=block_of,
            group=self.param_groups[0],
            damping=self.damping_rule,
            fisher=self._fisher,
            first=self.step_count == 1,
        )

    def _bind_state(self) -> None:
        """The per-parameter state dicts and momentum buffers in block order, listed once (and
        again after `load_state_dict`, which replaces them) rather than on every step."""
        self._states = [self.state[p] for p in self._flat_params]
        self._buffers = [s["momentum_buffer"] for s in self._states]

    def _gather_grads(self) -> list[Block]:
        """Copy gradients into the block buffers; returns the blocks that have any."""
        if all(p.grad is not None for p in self._flat_params):
            torch._foreach_copy_(self._flat_grad_views, [p.grad for p in self._flat_params])
            return self.curvature.blocks
        live = []
        for b in self.curvature.blocks:
            if all(p.grad is None for p in b.params):
                continue
            live.append(b)
            for view, p in zip(b.grad_views, b.params):
                view.zero_() if p.grad is None else view.copy_(p.grad)
        return live

    # ---------------------------------------------------------------- the curvature, for users
    @torch.no_grad()
    def update_aux(self, inputs: Tensor, u: list[Tensor] | None = None) -> Tensor:
        """One λ update on a batch of inputs. u: one probe per parameter (in `param_groups`
        order); by default the current gradients (`u_sampling="gradient"`) or N(0, I)."""
        with torch.autocast(self._device.type, enabled=False):
            return self.curvature.update_aux(inputs, u)

    @torch.no_grad()
    def initialize_q(self, inputs: Tensor) -> None:
        """Start Q(λ) of each Kronecker block at K-FAC's damped inverse estimated on a batch of
        inputs (`fishleg.curvature.kfac`), with γ = param_groups[0]["damping"]; blocks whose structure or
        layer has no Kronecker form keep their Q. `step` calls it before the first parameter
        step when q_init="kfac" (and again every `kfac_every` steps, clearing those λ's Adam
        moments)."""
        self.curvature.initialize_q(inputs)

    @torch.no_grad()
    def apply_q(self, tensors: list[Tensor]) -> list[Tensor]:
        """Q(λ) applied to one tensor per parameter (in `param_groups` order)."""
        return self.curvature.apply_q(tensors)

    def is_finite(self) -> Tensor:
        """Whether every λ is finite, as a 0-d bool tensor: no host sync here, so a training loop
        reads it when it chooses (e.g. once per epoch) to stop a run whose Q has broken down."""
        return self.curvature.is_finite()

    # ---------------------------------------------------------------- checkpointing
    def _stateful(self) -> list[Stateful]:
        """The parts whose state a checkpoint holds, beside torch's per-parameter state."""
        parts = (self.curvature, self.damping_rule, self.graft, self.partner)
        return [part for part in parts if part is not None]

    @override
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        extra: dict[str, Any] = {"step_count": self.step_count}
        for part in self._stateful():
            extra.update(part.state_dict())
        state[_EXTRA_STATE] = extra
        return state

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        extra = state_dict.pop(_EXTRA_STATE, None)
        if extra is None:
            raise ValueError(
                "FishLeg.load_state_dict: this state was not saved by FishLeg (it has no FishLeg section: λ, "
                "the aux optimizer, the counters); resume with the optimizer that saved it, or start FishLeg fresh "
                "without loading the optimizer's state"
            )
        self._check_same_model(state_dict)
        super().load_state_dict(state_dict)
        self._bind_state()
        for part in self._stateful():
            part.load_state_dict(extra)
        self.step_count = extra["step_count"]

    def _check_same_model(self, state_dict: dict[str, Any]) -> None:
        """A state saved for a model of other layers or sizes is named as such, before anything
        is copied (torch would fail deep inside with a bare size mismatch, or not at all)."""
        names = [n for b in self.curvature.blocks for n in b.names]
        saved = state_dict.get("state", {})
        count = sum(len(g["params"]) for g in state_dict.get("param_groups", []))
        where = "FishLeg.load_state_dict: this state was saved for another model"
        fix = "load it into the model it was saved with (the same layers and sizes), or start FishLeg fresh"
        if count != len(names):
            raise ValueError(f"{where}: it holds {count} parameters, this model's FishLeg has {len(names)}; {fix}")
        for i, (name, p) in enumerate(zip(names, self._flat_params)):
            buffer = saved.get(i, {}).get("momentum_buffer")
            if isinstance(buffer, Tensor) and buffer.shape != p.shape:
                raise ValueError(
                    f"{where}: its parameter {i} has shape {tuple(buffer.shape)}, this model's ({name}) has "
                    f"{tuple(p.shape)}; {fix}"
                )


FishLeg.__init__.__signature__ = FishLegConfig.signature(FishLeg.__init__)  # type: ignore[attr-defined]
FishLeg.__doc__ = (FishLeg.__doc__ or "") + FishLegConfig.help_text()
