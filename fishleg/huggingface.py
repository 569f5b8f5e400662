"""FishLeg in the Hugging Face `Trainer` (needs `pip install 'fishleg-tune[hf]'`).

Three things stand between a transformers model and FishLeg, each solved here once:
- GPT-2 and its kin build their projections from `transformers.pytorch_utils.Conv1D` (a
  Linear with its weight stored transposed): importing this module registers it, so those
  layers get the configured Q structure instead of a diagonal one.
- A causal LM returns a ModelOutput; FishLeg's Fisher needs logits, one row per predicted
  token: `CausalLMLogits` is that view of the model (same parameters, nothing copied).
- The Trainer calls `optimizer.step()` without a closure: `trainer_optimizer` refuses the
  option that needs one (adaptive_damping) before training starts, not at the first step.

    >>> optimizer = trainer_optimizer(model, load_config("best_config.yaml"),
    ...     aux_from_loader(DataLoader(train, collate_fn=default_data_collator), inputs="input_ids"))
    >>> Trainer(model, args, train_dataset=train, optimizers=(optimizer, None)).train()
"""

from __future__ import annotations

from torch import Tensor, nn
from typing_extensions import override

from fishleg.config import FishLegConfig
from fishleg.curvature.aux_data import AuxData
from fishleg.layers import LinearAdapter, register_layer
from fishleg.optimizer import FishLeg

try:
    from transformers.pytorch_utils import Conv1D
except ImportError as exc:  # pragma: no cover - the extra is installed with the test extras
    raise ImportError("fishleg.huggingface needs transformers: pip install 'fishleg-tune[hf]'") from exc

__all__ = ["CausalLMLogits", "TransposedLinearAdapter", "trainer_optimizer"]


@register_layer(Conv1D)
class TransposedLinearAdapter(LinearAdapter):
    """transformers' Conv1D: y = x W + b with W stored (in, out); U = [Wᵀ | b] (out, in + 1),
    the layout nn.Linear's U has, so K-FAC's factors and every Q structure apply unchanged."""

    @override
    def block_shape(self, module: nn.Module) -> tuple[int, int]:
        fan_in, fan_out = module.weight.shape
        return fan_out, fan_in + int(module.bias is not None)

    @override
    def split(self, module: nn.Module, block: Tensor) -> list[Tensor]:
        fan_in = module.weight.shape[0]
        views = [block[:, :fan_in].T]
        if module.bias is not None:
            views.append(block[:, fan_in])
        return views


def _check_attention(model: nn.Module) -> None:
    """FishLeg's Fisher products differentiate the forward in forward mode (`torch.func.jvp`),
    which torch's fused attention kernels lack (sdpa's flash kernel raises NotImplementedError,
    and which kernel sdpa picks depends on the inputs and device): only eager attention runs."""
    attention = getattr(getattr(model, "config", None), "_attn_implementation", None)
    if attention is not None and attention != "eager":
        raise ValueError(
            f"FishLeg: the model uses attn_implementation={attention!r}, whose fused kernels have no forward-mode "
            "derivative, and FishLeg's Fisher products need one (torch raises NotImplementedError in the first aux "
            "step). Build the model with attn_implementation='eager' (from_pretrained(..., attn_implementation="
            "'eager'), or model.set_attn_implementation('eager') on a built one)"
        )


class CausalLMLogits(nn.Module):
    """A causal LM seen as input_ids (B, T) → next-token logits (B·T, vocab): each position one
    prediction, as the LM's loss counts them. The wrapped model's parameters are this module's."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        _check_attention(model)
        self.model = model

    @override
    def forward(self, input_ids: Tensor) -> Tensor:
        return self.model(input_ids=input_ids).logits.flatten(0, 1)


def trainer_optimizer(
    model: nn.Module,
    config: FishLegConfig,
    aux_data: AuxData,
    *,
    seed: int | None = None,
) -> FishLeg:
    """FishLeg for a Hugging Face causal LM trained by `transformers.Trainer` (pass it through
    `optimizers=(optimizer, None)`, or return it from a `create_optimizer` override). config:
    e.g. `fishleg.load_config("best_config.yaml")`; aux_data: `aux_from_loader(loader,
    inputs="input_ids")` on a loader over the train set."""
    opt_config = getattr(config, "optimizer", config)
    if isinstance(opt_config, FishLegConfig) and opt_config.adaptive_damping:
        raise ValueError(
            "adaptive_damping: the Hugging Face Trainer calls optimizer.step() without a closure, and "
            "adaptive damping needs one (it measures the loss after the step); set adaptive_damping: false, "
            "or train with a loop that passes a closure (Lightning, or your own)"
        )
    return FishLeg.from_config(CausalLMLogits(model), config, likelihood="categorical", aux_data=aux_data, seed=seed)
