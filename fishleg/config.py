"""FishLeg's hyperparameters as data: `FishLegConfig`, validated here and only here, and
`load_config`, which reads them from a file for production code.

The names are the constructor's (`FishLeg(model, likelihood, lr=..., aux_lr=...)`), so a
tuned value has the same name in a sweep file, an exported best config and code. A file is
a bare mapping of these names, or any YAML with an `optimizer:` section of them (the rest of
that file is ignored here). Reading hand-edited sweep files, and explaining their mistakes
in terms of their layout, is the tuning tool's job (tuning.yaml_files, tuning.run.config).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection
from pathlib import Path
from types import NoneType
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

from fishleg.curvature.probes import PROBES
from fishleg.step.grafting import GRAFTS
from fishleg.step.partner import parse_kinds
from fishleg.step.rules import STEP_RULES
from fishleg.step.schedules import Schedule
from fishleg.structures import STRUCTURES

__all__ = [
    "ConfigError",
    "FishLegConfig",
    "StrictModel",
    "invalid",
    "load_config",
]


class ConfigError(ValueError):
    """Invalid configuration; the message is one paragraph fit to show a user."""


class StrictModel(BaseModel):
    """Frozen, and unknown keys are errors: a typo never passes silently; nor does `true` where
    a number belongs (pydantic would read it as 1)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _no_boolean_numbers(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key, value in data.items():
                field = cls.model_fields.get(key) if isinstance(value, bool) else None
                kinds = set(get_args(field.annotation)) or {field.annotation} if field else set()
                if kinds and kinds - {NoneType} <= {int, float}:
                    raise ValueError(f"{key}: expected a number, got {str(value).lower()}")
        return data


def _number_or_schedule(number: Any) -> WrapValidator:
    """A field that takes a number (validated as `number`) or a `Schedule`, a callable of the
    step, passed through as it is (fishleg.step.schedules)."""
    adapter = TypeAdapter(number)

    def validate(value: Any, handler: Any) -> Any:
        if callable(value):
            return value
        if isinstance(value, bool):
            raise ValueError(f"expected a number or a schedule (a callable of the step), got {str(value).lower()}")
        try:
            return adapter.validate_python(value)
        except ValidationError as err:
            raise ValueError(err.errors()[0]["msg"]) from None

    return WrapValidator(validate)


ScheduledFloat = Annotated[float | Schedule, _number_or_schedule(PositiveFloat)]
ScheduledInt = Annotated[int | Schedule, _number_or_schedule(PositiveInt)]


_REGISTRIES = {"q_structure": STRUCTURES, "step_rule": STEP_RULES, "graft": GRAFTS, "u_sampling": PROBES}
_OWNERS: dict[str, tuple[Callable[[Any], bool], tuple[str, ...], Callable[[], str]]] = {
    "the aux loop": (
        lambda c: c.learn_q,
        ("warmup_aux_steps", "dense_aux_steps", "aux_lr_start"),
        lambda: "learn_q: true",
    ),
    "the K-FAC start": (lambda c: c.q_init == "kfac", ("kfac_every",), lambda: "q_init: kfac"),
    "the graft": (
        lambda c: c.graft != "none",
        ("graft_beta2", "graft_eps"),
        lambda: f"graft to one of {GRAFTS.names()}",
    ),
    "the partner": (lambda c: c.partner != "none", ("partner_params", "partner_betas"), lambda: "partner: adamw"),
    "a q_structure of several terms": (
        lambda c: STRUCTURES[c.q_structure].takes_rank,
        ("kron_sum_rank",),
        lambda: (
            f"q_structure to one of {[n for n in STRUCTURES.names() if STRUCTURES[n].takes_rank]} "
            "(in a sweep, with `when:`)"
        ),
    ),
}
"""Options that only one optional part reads: (whether the config has the part, its options, the
setting that turns it on)."""


class FishLegConfig(StrictModel):
    """FishLeg's hyperparameters; the defaults are the reference implementation's.

    Each field's description is its documentation: `help(FishLeg)` shows them."""

    name: Literal["fishleg"] = Field("fishleg", description="the optimizer's name in config files")
    lr: ScheduledFloat = Field(5e-2, description="η, the parameter step size (a number or a schedule of the step)")
    aux_lr: float = Field(1e-4, gt=0, description="α, the Adam step size of the λ updates")
    aux_lr_start: float | None = Field(
        None,
        gt=0,
        description="the aux_lr of the first λ update, moved geometrically to aux_lr over the first "
        "aux_lr_decay_steps λ updates: long strides while Q is far from (F + γI)⁻¹, aux_lr's finer ones "
        "after; None: aux_lr throughout (then a torch LR scheduler on `aux_optimizer` may drive it)",
    )
    aux_lr_decay_steps: int = Field(100, gt=0, description="λ updates over which aux_lr_start moves to aux_lr")
    aux_batch_size: int = Field(100, gt=0, description="inputs per auxiliary Fisher batch drawn from aux_data")
    damping: ScheduledFloat = Field(
        0.5, description="γ: Q(λ) is fitted to (F + γI)⁻¹ (a number or a schedule of the step)"
    )
    update_aux_every: ScheduledInt = Field(
        10,
        description="parameter steps per λ update: a step gets one when its number is a multiple of this "
        "(a number, or a schedule of the step, e.g. lambda step: 1 if step < 100 else 20)",
    )
    warmup_aux_steps: int = Field(
        0,
        ge=0,
        description="λ updates on auxiliary batches before the first parameter step, so that Q starts "
        "fitted to the model's Fisher rather than at init_scale·I (the reference's autoencoder script ran "
        "10 such pre_aux_training steps); 0: none",
    )
    dense_aux_steps: int = Field(
        0,
        ge=0,
        description="the first dense_aux_steps parameter steps each get a λ update (a denser schedule "
        "while Q is far from (F + γI)⁻¹), then every update_aux_every-th; 0: none",
    )
    adaptive_damping: bool = Field(
        False,
        description="Levenberg–Marquardt damping, K-FAC's rule: every update_aux_every steps the loss change "
        "of the step is compared with the change the quadratic model gᵀδ + ½δᵀFδ predicts (ρ), and γ shrinks "
        "by ω = (19/20)^update_aux_every when ρ > 3/4, grows by 1/ω when ρ < 1/4. Needs aux_data and "
        "step(closure); costs one more closure call and one forward-mode pass on those steps",
    )
    step_rule: str = Field(
        "momentum",
        description="what a step does with Q·g: 'momentum' (FishLeg's: θ ← θ − lr·(m + weight_decay·θ), m the "
        "momentum beta of Q·g) or 'quadratic' (K-FAC's step, Martens & Grosse, 2015, §7: δ = lr·(a·Q·g + m·δ₀), "
        "with a and m minimising the damped quadratic model gᵀδ + ½δᵀ(F + γI)δ over the plane of Q·g and the last "
        "step δ₀, F on an aux batch; so lr = 1 is the model's minimiser, the model chooses the momentum m (beta "
        "stays at its default), and adaptive damping's ρ judges the step the model chose; needs aux_data, costs "
        "two forward-mode passes per step), or a rule registered in fishleg.step.rules.STEP_RULES",
    )
    bound_step: bool = Field(
        False,
        description="shorten each layer's Q·g to ‖g‖/γ where it is longer: (F + γI)⁻¹ stretches no vector by "
        "more than 1/γ, so a longer Q·g is an overshoot of the aux fit (measured before the dense schedule's "
        "divergence on the MNIST autoencoder, where layers' ‖Q·g‖/‖g‖ reached 8-20 at γ = 0.3)",
    )
    q_init: Literal["identity", "kfac"] = Field(
        "identity",
        description="where Q starts: 'identity' (init_scale·I, the reference's) or 'kfac' (K-FAC's damped "
        "inverse (G + γ_G I)⁻¹ ⊗ (A + γ_A I)⁻¹, estimated on an auxiliary batch before the first step "
        "(and again every kfac_every steps), for each Linear/Conv2d layer; needs q_structure kron or kron_diag)",
    )
    kfac_every: int = Field(
        0,
        ge=0,
        description="with q_init 'kfac': every kfac_every parameter steps, Q of each Kronecker block starts "
        "again at K-FAC's estimate on a fresh auxiliary batch (its λ's Adam moments cleared) and the aux loop "
        "refines it from there: the first step's estimate goes stale as the weights move faster than a small "
        "aux_lr lets the aux loop follow (docs/benchmarks.md); 0: once, before the first step",
    )
    learn_q: bool = Field(
        True,
        description="false: the aux loop never runs, so Q stays where q_init put it: K-FAC's estimate (made "
        "again every kfac_every steps) with q_init 'kfac', init_scale·I (grafted momentum SGD with a graft) "
        "with 'identity'. The controls that show what the learnt Q adds over its start",
    )
    q_structure: str = Field(
        "kron", description="the Q(λ) family of Linear/Conv layers: diag, kron, kron_diag or kron_sum"
    )
    kron_sum_rank: int = Field(2, gt=0, description="number of Kronecker terms of kron_sum")
    beta: float = Field(0.9, ge=0, lt=1, description="momentum of Q·g")
    weight_decay: float = Field(1e-5, ge=0, description="decoupled weight decay, scaled by lr")
    init_scale: float = Field(
        1.0, gt=0, description="Q starts at init_scale·I (1/damping is the reference's other choice)"
    )
    aux_betas: tuple[float, float] = Field((0.9, 0.999), description="Adam betas of the λ updates")
    aux_eps: float = Field(1e-8, gt=0, description="Adam epsilon of the λ updates")
    u_sampling: str = Field(
        "gradient",
        description="the aux probe u: 'gradient' (the reference's default; the aux step reuses the step's Q·g "
        "and fits Q along the directions it is applied to) or 'gaussian' (u ~ N(0, I): fits Q in every "
        "direction, at one more Q·u per aux step)",
    )
    normalize_aux: bool = Field(
        True,
        description="divide the aux residual by ‖Qu‖·‖u‖ (the reference's default): the λ step no longer "
        "depends on the scale of u and Q, so aux_lr need not follow the gradient's scale through training",
    )
    precondition_aux: bool = Field(
        True,
        description="multiply the aux residual by Q once more before it meets Qu (the reference's default): "
        "a natural-gradient step for λ. These three decide whether FishLeg trains at all: the bare "
        "combination (gaussian, no normalisation, no preconditioning) stalled or diverged on the MNIST "
        "autoencoder where the defaults train",
    )

    graft: str = Field(
        "none",
        description="learning-rate grafting (Agarwal et al., 2020; Shampoo's grafting): each layer's step keeps "
        "FishLeg's direction (its momentum of Q·g) and takes its length from this first-order method run beside "
        "it on the same gradients, so an lr and schedule tuned for that method carry over; 'adam' uses betas "
        "(beta, graft_beta2). Not with step_rule 'quadratic', which chooses the length from the quadratic model",
    )
    graft_beta2: float = Field(
        0.999, ge=0, lt=1, description="the grafted method's second-moment decay (Adam's β₂, RMSprop's alpha)"
    )
    graft_eps: float = Field(1e-8, gt=0, description="the grafted method's ε")
    partner: Literal["none", "adamw"] = Field(
        "none",
        description="a first-order optimizer for the parameters of partner_params' kinds, which then get no Q: "
        "AdamW at the same lr (and its schedule) and weight_decay, with betas partner_betas. Not with "
        "adaptive_damping, whose quadratic model would not see the partner's step",
    )
    partner_params: str = Field(
        "embedding,norm",
        description="comma-separated kinds of module whose parameters the partner trains: embedding "
        "(nn.Embedding), norm (LayerNorm, GroupNorm, RMSNorm, BatchNorm), head (the model's last nn.Linear), "
        "or a kind registered with fishleg.step.partner.register_param_kind",
    )
    partner_betas: tuple[float, float] = Field((0.9, 0.999), description="the partner AdamW's betas")

    scale_free_aux: bool = Field(
        False,
        description="fit Q's direction only: the aux loss at Q's best multiple, min_c A(cQ; u) = "
        "−(uᵀQu)²/(2uᵀQ(F+γI)Qu), whose minimisers are the multiples of (F+γI)⁻¹ along u, so no λ update is spent "
        "on Q's scale, which a graft (or the quadratic step) replaces anyway; needs one of them to set the "
        "step's length. Off: the reference's loss, which also fits Q's scale",
    )

    aux_work: Literal["all", "split"] = Field(
        "all",
        description="under data parallelism: 'all' (every rank computes every block's λ gradient, then the "
        "gradients are averaged) or 'split' (the aux residuals are averaged, each rank computes the λ gradients "
        "of its share of the blocks, balanced by cost, and the shares are exchanged), so the structures' part of "
        "the aux step falls with the number of ranks; both keep every rank's λ identical. No effect on one process",
    )

    @field_validator("q_structure", "step_rule", "graft", "u_sampling")
    @classmethod
    def _registered(cls, value: str, info: ValidationInfo) -> str:
        """A part's name is one its registry holds (the registry is the one list of names)."""
        registry = _REGISTRIES[info.field_name]
        off = "none" if info.field_name == "graft" else None  # the part a user may leave out
        if value != off and value not in registry:
            raise ValueError(f"must be {f'{off!r} or ' if off else ''}one of {registry.names()}")
        return value

    @field_validator("partner_params")
    @classmethod
    def _known_kinds(cls, value: str) -> str:
        parse_kinds(value)
        return value

    @field_validator("aux_betas", "partner_betas")
    @classmethod
    def _betas_in_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not all(0 <= b < 1 for b in value):
            raise ValueError("both betas must be in [0, 1)")
        return value

    @model_validator(mode="after")
    def _kfac_needs_kronecker(self) -> FishLegConfig:
        if self.q_init == "kfac" and not STRUCTURES[self.q_structure].kronecker_init:
            kronecker = [name for name in STRUCTURES.names() if STRUCTURES[name].kronecker_init]
            raise ValueError(
                f"q_init 'kfac' needs a q_structure with a Kronecker form ({', '.join(kronecker)}), "
                f"got {self.q_structure!r}"
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _quadratic_step_is_a_step_rule(cls, data: Any) -> Any:
        """Configs written before `step_rule` say `quadratic_step: true/false`: read as that rule."""
        if isinstance(data, dict) and isinstance(data.get("quadratic_step"), bool) and "step_rule" not in data:
            legacy = data["quadratic_step"]
            data = {k: v for k, v in data.items() if k != "quadratic_step"}
            data["step_rule"] = "quadratic" if legacy else "momentum"
        return data

    @model_validator(mode="after")
    def _beta_has_a_role(self) -> FishLegConfig:
        default = type(self).model_fields["beta"].default
        if not STEP_RULES[self.step_rule].uses_beta and self.beta != default:
            raise ValueError(
                f"beta {self.beta} has no role with step_rule {self.step_rule!r} (it chooses the momentum of each "
                f"step); leave beta at {default} or use step_rule 'momentum'"
            )
        return self

    @model_validator(mode="after")
    def _options_of_a_part_that_is_off(self) -> FishLegConfig:
        """An option of a part the config leaves out (`_OWNERS`) stays at its default: set, it
        would do nothing, which a tuned or hand-written config must not believe it does."""
        fields = type(self).model_fields
        for part, (is_on, options, turn_on) in _OWNERS.items():
            changed = [n for n in options if getattr(self, n) != fields[n].default]
            if changed and not is_on(self):
                given, several = ", ".join(f"{n} {getattr(self, n)!r}" for n in changed), len(changed) > 1
                raise ValueError(
                    f"{given}: {'options' if several else 'an option'} of {part}, which this config leaves out; "
                    f"leave {'them' if several else 'it'} at "
                    f"{', '.join(f'{n} {fields[n].default!r}' for n in changed)} or set {turn_on()}"
                )
        return self

    @model_validator(mode="after")
    def _parts_compose(self) -> FishLegConfig:
        if self.scale_free_aux and self.graft == "none" and STEP_RULES[self.step_rule].takes_graft:
            raise ValueError(
                "scale_free_aux leaves Q's scale where it started, so the step's length needs a graft (e.g. graft: "
                "adam) or a step rule that chooses it (step_rule: quadratic)"
            )
        if self.graft != "none" and not STEP_RULES[self.step_rule].takes_graft:
            raise ValueError(
                f"graft {self.graft!r} does not compose with step_rule {self.step_rule!r}: the rule chooses each "
                "step's length; use one of them"
            )
        if self.partner != "none" and self.adaptive_damping:
            raise ValueError(
                f"partner {self.partner!r} does not compose with adaptive_damping: its ρ compares the loss change "
                "with a quadratic model of FishLeg's own step, which the partner's step would also move; "
                "use one of them"
            )
        return self

    @classmethod
    def keyword_fields(cls) -> dict[str, FieldInfo]:
        """The fields that are the FishLeg constructor's keyword hyperparameters."""
        return {name: info for name, info in cls.model_fields.items() if name != "name"}

    @classmethod
    def signature(cls, init: Callable[..., None]) -> inspect.Signature:
        """`init`'s signature with each hyperparameter as a keyword-only parameter, its default
        and type from these fields (their one declaration), for `help`, IDEs and `inspect`."""
        fixed = [p for p in inspect.signature(init).parameters.values() if p.kind != p.VAR_KEYWORD]
        keyword = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=info.default, annotation=info.annotation)
            for name, info in cls.keyword_fields().items()
        ]
        return inspect.Signature([*fixed, *keyword], return_annotation=None)

    @classmethod
    def help_text(cls) -> str:
        """The hyperparameters with defaults and descriptions, for `help(FishLeg)`."""
        lines = ["", "Hyperparameters (keyword-only; validated by `FishLegConfig`):"]
        lines += [f"    {name} = {info.default!r}: {info.description}" for name, info in cls.keyword_fields().items()]
        return "\n".join(lines)

    @classmethod
    def merged(cls, config: FishLegConfig | None, keywords: dict[str, Any], source: str) -> FishLegConfig:
        """`config` (the defaults without one) with `keywords` over it, validated once (a config
        given alone is already valid, so it is used as it is). An
        unknown keyword is a TypeError, as a written signature would raise; a bad value a
        ValueError naming `source` and the key."""
        names = cls.keyword_fields()
        unknown = sorted(set(keywords) - set(names))
        if unknown:
            raise TypeError(
                f"{source}() got unexpected keyword arguments {unknown}; its hyperparameters are FishLegConfig's "
                f"fields ({', '.join(names)})"
            )
        if config is not None and not keywords:
            return config  # validated when it was made, and frozen
        given = {} if config is None else config.hyperparameters()
        try:
            return cls(**{**given, **keywords})
        except ValidationError as err:
            raise ValueError(invalid(err, source)) from None

    def hyperparameters(self) -> dict[str, Any]:
        """The constructor's keyword arguments: `FishLeg(model, likelihood, **config.hyperparameters())`."""
        return self.model_dump(exclude={"name"})


def invalid(err: ValidationError, source: str, prefix: str = "", union_tags: Collection[str] = ()) -> str:
    """One paragraph naming `source`, each bad key path, what was given and what is allowed.

    prefix: where the validated mapping sits in its file (e.g. "optimizer."); union_tags:
    names pydantic puts into a location for the member of a tagged union (e.g.
    `optimizer.fishleg.lr`), left out so that the path is the one written in the file."""
    parts = []
    for e in err.errors():
        loc = [str(x) for i, x in enumerate(e["loc"]) if not (i and str(x) in union_tags)]
        msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"].removeprefix("Value error, ")
        if not loc:  # a check across fields: its message names them
            parts.append(msg)
            continue
        given = "" if e["type"] in ("missing", "extra_forbidden") else f" (got {e.get('input')!r})"
        parts.append(f"{prefix}{'.'.join(loc)}: {msg}{given}")
    return f"{source}: invalid configuration: " + "; ".join(parts) + "."


def load_config(path: str | Path) -> FishLegConfig:
    """FishLeg's hyperparameters from a YAML file: a bare mapping of them, or the `optimizer:`
    section of a larger file (an exported `best_config.yaml` or a run config).

    >>> opt = FishLeg.from_config(model, load_config("best_config.yaml"), likelihood=..., aux_data=...)"""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read a YAML file ({exc}).") from None
    section = data.get("optimizer") or {} if isinstance(data, dict) and "optimizer" in data else data
    prefix = "optimizer." if section is not data else ""
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: expected a mapping of FishLeg hyperparameters or an `optimizer:` section of one.")
    if section.get("name", "fishleg") != "fishleg":
        raise ConfigError(f"{path}: {prefix}name: the optimizer is {section['name']!r}, not 'fishleg'.")
    try:
        return FishLegConfig.model_validate(section)
    except ValidationError as err:
        raise ConfigError(invalid(err, str(path), prefix)) from None
