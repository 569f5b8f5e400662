"""The partner: the parameters of the chosen kinds move exactly as AdamW moves them alone, at
FishLeg's lr (and its schedule), and get no Q."""

import copy

import pytest
import torch
from torch import nn

from fishleg import FishLeg, FishLegConfig
from fishleg.step.partner import partner_parameters


class Tagger(nn.Module):
    """Embedding → LayerNorm → Linear → Linear: one module of every default kind, and a head."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 6)
        self.norm = nn.LayerNorm(6)
        self.hidden = nn.Linear(6, 6)
        self.head = nn.Linear(6, 4)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.hidden(self.norm(self.embed(tokens)))))


def test_partner_parameters_move_exactly_as_adamw_alone_under_fishlegs_schedule():
    torch.manual_seed(0)
    model = Tagger()
    shadow = copy.deepcopy(model)
    tokens, labels = torch.randint(10, (32,)), torch.randint(4, (32,))
    opt = FishLeg(model, "categorical", tokens, partner="adamw", partner_betas=(0.8, 0.99), lr=0.02,
                  weight_decay=0.1, aux_batch_size=8, update_aux_every=2)  # fmt: skip
    assert [b.names for b in opt.curvature.blocks] == [["hidden.weight", "hidden.bias"], ["head.weight", "head.bias"]]
    mine = [shadow.embed.weight, shadow.norm.weight, shadow.norm.bias]
    adamw = torch.optim.AdamW(mine, lr=0.02, betas=(0.8, 0.99), weight_decay=0.1)
    schedule = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    for _ in range(5):
        opt.zero_grad()
        nn.functional.cross_entropy(model(tokens), labels).backward()
        for p, q in zip(model.parameters(), shadow.parameters()):
            q.grad = p.grad.clone()  # the same gradients: the rest of the model moves differently
        opt.step()
        adamw.step()
        schedule.step()
        adamw.param_groups[0]["lr"] = opt.param_groups[0]["lr"]
    for name in ("embed.weight", "norm.weight", "norm.bias"):
        torch.testing.assert_close(model.get_parameter(name), shadow.get_parameter(name), rtol=0, atol=0)
    assert not torch.equal(model.hidden.weight, shadow.hidden.weight)  # FishLeg's own step


def test_zero_grad_clears_the_partners_gradients_and_checkpoints_carry_its_state():
    torch.manual_seed(0)
    model, tokens, labels = Tagger(), torch.randint(10, (16,)), torch.randint(4, (16,))
    opt = FishLeg(model, "categorical", aux_data="manual", partner="adamw")
    nn.functional.cross_entropy(model(tokens), labels).backward()
    opt.step()
    state = opt.state_dict()
    opt.zero_grad()
    assert model.embed.weight.grad is None and model.hidden.weight.grad is None
    restored = FishLeg(Tagger(), "categorical", aux_data="manual", partner="adamw")
    restored.load_state_dict(state)
    assert restored.partner.optimizer.state_dict()["state"][0]["exp_avg"].abs().sum() > 0


def test_kinds_are_chosen_by_name_and_the_head_is_the_last_linear():
    model = Tagger()
    assert partner_parameters(model, "head") == [model.head.weight, model.head.bias]
    assert partner_parameters(model, "embedding") == [model.embed.weight]
    with pytest.raises(ValueError, match=r"unknown partner parameter kind 'biases'; allowed: \['embedding', 'head'"):
        FishLegConfig(partner="adamw", partner_params="norm,biases")


def test_partner_and_adaptive_damping_are_refused_together():
    with pytest.raises(ValueError, match="partner 'adamw' does not compose with adaptive_damping"):
        FishLegConfig(partner="adamw", adaptive_damping=True)


def test_each_part_checkpoints_its_own_keys_in_the_layout_of_the_first_checkpoints():
    torch.manual_seed(0)
    model, tokens, labels = Tagger(), torch.randint(10, (16,)), torch.randint(4, (16,))
    opt = FishLeg(model, "categorical", aux_data="manual", partner="adamw", graft="adam")
    nn.functional.cross_entropy(model(tokens), labels).backward()
    opt.step()
    section = opt.state_dict()["fishleg"]
    curvature = {"lambda", "aux_optimizer", "aux_step_count", "last_aux_loss", "probe_rng", "aux_sampler"}
    assert set(section) == {"step_count", *curvature, "damping_scale", "last_rho", "graft_steps", "partner"}
    assert section["graft_steps"] == 1 and section["partner"]["state"][0]["step"] == 1
    # The first checkpoints wrote None for a part that was off; such a state loads as it did.
    plain = FishLeg(Tagger(), "categorical", aux_data="manual")
    old = plain.state_dict()
    old["fishleg"] = {**old["fishleg"], "step_count": 7, "graft_steps": None, "partner": None}
    again = FishLeg(Tagger(), "categorical", aux_data="manual")
    again.load_state_dict(old)
    assert again.step_count == 7 and again.graft is None and again.partner is None
