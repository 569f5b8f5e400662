"""The Q-only changes of a chosen FishLeg config: the aux loop off (Q held at its start), and for
a K-FAC start Q at init_scale·I as well; everything else as chosen, every variant valid."""

from tuning.selection.ablation import ablations
from tuning.sweep.spec import SweepSpec

LR = {"optimizer.lr": {"type": "float", "low": 1e-3, "high": 1.0, "log": True}}


def spec(**optimizer) -> SweepSpec:
    return SweepSpec.model_validate(
        {"workload": {"name": "digits_classifier"}, "optimizer": {"name": "fishleg", **optimizer}, "space": LR}
    )


def test_a_kfac_start_gets_kfac_only_and_identity_with_everything_else_as_chosen():
    s = spec(q_init="kfac", kfac_every=50, warmup_aux_steps=3, graft="adam", damping=0.01)
    variants = ablations(s, {"optimizer.lr": 0.02})
    assert list(variants) == ["K-FAC only (learn_q false)", "Q at init_scale·I (learn_q false, q_init identity)"]
    held, identity = (s.config_for({"optimizer.lr": 0.02, **change}).optimizer for change in variants.values())
    assert (held.learn_q, held.q_init, held.kfac_every, held.warmup_aux_steps) == (False, "kfac", 50, 0)
    assert (identity.learn_q, identity.q_init, identity.kfac_every) == (False, "identity", 0)
    for q in (held, identity):  # only Q changed: the chosen lr, damping and graft stay
        assert (q.lr, q.damping, q.graft) == (0.02, 0.01, "adam")


def test_an_identity_start_gets_one_variant_and_other_optimizers_none():
    assert list(ablations(spec(), {"optimizer.lr": 0.1})) == ["Q held at init_scale·I (learn_q false)"]
    assert ablations(spec(learn_q=False), {"optimizer.lr": 0.1}) == {}
    adamw = SweepSpec.model_validate(
        {"workload": {"name": "digits_classifier"}, "optimizer": {"name": "adamw"}, "space": LR}
    )
    assert ablations(adamw, {"optimizer.lr": 0.1}) == {}
