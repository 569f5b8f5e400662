"""ReportCallback: a LightningModule's logged metrics reach the context once per epoch, after
validation and the module's own epoch-end hook; its checkpoint resumes Lightning bitwise; a
non-finite metric is told apart (a diverged run, or a metric logged wrongly)."""

import math

import pytest
import torch
from torch import nn

from examples.lightning.tune import fit
from tuning.errors import NonFiniteLoss
from tuning.run.config import RunConfig
from tuning.run.fit import LocalContext, ProtocolError, Saved

L = pytest.importorskip("lightning")
from tuning.run.lightning import ReportCallback  # noqa: E402


def config(epochs: int = 3, **optimizer) -> RunConfig:
    return RunConfig.model_validate(
        {
            "trainable": {"name": "examples.lightning.tune:fit", "hidden": 8},
            "optimizer": {"name": "fishleg", "q_structure": "kron", "aux_batch_size": 16, "update_aux_every": 2}
            | optimizer,
            "training": {"epochs": epochs, "batch_size": 64, "seed": 0, "device": "cpu"},
        }
    )


class Logs(L.LightningModule):
    """One weight; logs `val_loss` = 10·epoch + 1 in validation and `late` = epoch in its own
    on_train_epoch_end; its training loss is `loss_scale`·w² (NaN when told to be)."""

    def __init__(self, val: float | None = None, loss_scale: float = 1.0) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))
        self.val = val
        self.loss_scale = loss_scale

    def training_step(self, batch, batch_idx):
        loss = self.loss_scale * (self.w**2).sum()
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        value = 10.0 * self.current_epoch + 1 if self.val is None else self.val
        self.log("val_loss", torch.tensor(value), on_epoch=True)

    def on_train_epoch_end(self):
        self.log("late", float(self.current_epoch))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def run(module, context, report=None, fresh=False):
    """`module` trained by Lightning with a ReportCallback(context, **report); `fresh`: without
    the callback's resume_from, as a fit that forgot it."""
    loader = torch.utils.data.DataLoader(torch.zeros(4, 1), batch_size=2)
    callback = ReportCallback(context, **(report or {}))
    trainer = L.Trainer(
        max_epochs=context.config.training.epochs,
        callbacks=[callback],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, loader, loader, ckpt_path=None if fresh else callback.resume_from)


def test_each_epoch_reports_what_the_module_logged_after_validation_and_its_own_epoch_end():
    context = LocalContext(config(epochs=3))
    run(Logs(), context)
    assert [r["val_loss"] for r in context.history] == [1.0, 11.0, 21.0]  # the sanity check is not reported
    assert [r["late"] for r in context.history] == [0.0, 1.0, 2.0]  # logged in the module's on_train_epoch_end
    assert [r["epoch"] for r in context.history] == [1, 2, 3]
    # train_loss: mean of the epoch's two steps of w ← 0.8 w (SGD on w², lr 0.1), from w = 1
    assert context.history[0]["train_loss"] == pytest.approx((1 + 0.64) / 2)


def test_metrics_are_reported_under_the_sweeps_names_and_a_missing_one_is_named():
    context = LocalContext(config(epochs=1))
    run(Logs(), context, report={"metrics": {"loss_on_val": "val_loss"}})
    assert set(context.history[0]) == {"loss_on_val", "epoch", "epoch_time_s"}
    with pytest.raises(ProtocolError, match=r"asked for \['valid/loss'\].*it logged \['late', 'train_loss', 'val"):
        run(Logs(), LocalContext(config(epochs=1)), report={"metrics": ["valid/loss"]})


def test_a_nan_metric_with_a_finite_loss_is_named_as_a_logging_fault_not_a_divergence():
    with pytest.raises(ProtocolError, match=r"logged \{'val_loss': nan\} at epoch 1 while every training loss"):
        run(Logs(val=math.nan), LocalContext(config(epochs=2)))


def test_a_nan_training_loss_is_a_divergence():
    with pytest.raises(NonFiniteLoss, match="epoch 1: a training loss of .* became non-finite.*lower lr"):
        run(Logs(val=math.nan, loss_scale=math.inf), LocalContext(config(epochs=2)))


def test_starting_lightning_afresh_when_the_trial_has_a_checkpoint_is_refused():
    first = LocalContext(config(epochs=1))
    run(Logs(), first)
    restored = LocalContext(config(epochs=2), restored=first.saved)
    with pytest.raises(ProtocolError, match="starts Lightning at epoch 0 but the trial reported 1 epochs.*resume_from"):
        run(Logs(), restored, fresh=True)


class Keeping(LocalContext):
    """Keeps every checkpoint reported, not only the newest."""

    def __init__(self, config: RunConfig) -> None:
        super().__init__(config)
        self.kept: list[Saved] = []

    def _emit(self, row, saved):
        self.kept.append(saved)
        super()._emit(row, saved)


def test_a_trial_resumed_from_its_epoch_2_report_ends_bitwise_where_the_uninterrupted_one_does():
    whole = Keeping(config(epochs=4, lr=0.3))
    fit(whole.config, whole)
    kept = whole.kept
    assert kept[1].epoch == 2 and kept[1].state["optimizer_states"][0]["fishleg"]["aux_step_count"] > 0
    resumed = LocalContext(config(epochs=4, lr=0.3), restored=kept[1])
    fit(resumed.config, resumed)
    assert [r["epoch"] for r in resumed.history] == [3, 4]
    for a, b in zip(whole.history[2:], resumed.history):
        assert (a["val_loss"], a["train_loss"], a["val_accuracy"]) == (
            b["val_loss"],
            b["train_loss"],
            b["val_accuracy"],
        )
    final_whole, final_resumed = kept[-1].state["state_dict"], resumed.saved.state["state_dict"]
    assert all(torch.equal(final_whole[k], final_resumed[k]) for k in final_whole)
    assert whole.history[-1]["val_loss"] < 1.5  # it trains: from ln 10 ≈ 2.3
