"""FishLeg's cost as layers widen, against every rival, side by side in one process; one JSON line.

On an MLP of three square hidden layers of width d and a 10-way head (batch 256, categorical
NLL), at each width: the time per step of AdamW, FishLeg (learnt Q from K-FAC's start with an aux
step every 10; K-FAC only, refreshed every 50; learnt Q from the identity), SOAP (eigenbases
every 10, its authors' default), Shampoo and Muon (the harness's defaults), each amortised over
whole periods of its own (an aux step, a refresh, a preconditioning) and timed in alternating
rounds (medians); each optimizer's state in bytes; the exponent of a least-squares fit of
log(ms) on log(d); and FishLeg's aux step and Q·g per part against a floor: the FLOPs that
torch's FlopCounterMode counts in them, at the rate `torch.mm` reaches on a d×d product in the
same process. Not run by default: `fishleg_learnt_unaligned` and `fishleg_kfac_only_unaligned`,
the same two FishLeg arms with their blocks on contiguous rows (the ablation of the aligned
layout).

    python benchmarks/width_scaling.py [--widths 256 512 1024 2048] [--rounds 2] [--threads 1]
        [--device cpu] [--arms adamw fishleg_learnt ...] [--figure docs/width_scaling.png] [--out FILE]
    python benchmarks/width_scaling.py --replot FILE --figure docs/width_scaling.png
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from fishleg import CategoricalLikelihood, FishLeg
from fishleg.curvature import curvature as curvature_module
from tuning.run.optimizers import MuonConfig, ShampooConfig, SOAPConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ as a package
from benchmarks.measure import contiguous_rows, flop_counter, report, seconds_per_call, sync  # noqa: E402

BATCH, AUX_BATCH, CLASSES = 256, 64, 10
LIKELIHOOD = CategoricalLikelihood()


def mlp(d: int) -> nn.Module:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(3):
        layers += [nn.Linear(d, d), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(d, CLASSES))


def fishleg_arm(aligned: bool = True, **options: Any) -> Callable[[nn.Module, Tensor], torch.optim.Optimizer]:  # noqa: ANN401
    """FishLeg with `options`; `aligned=False` builds its blocks on contiguous rows instead of the
    aligned ones `fishleg.structures.base.workspace` gives (the ablation of that layout)."""

    def build(model: nn.Module, x: Tensor) -> torch.optim.Optimizer:
        with contextlib.nullcontext() if aligned else contiguous_rows():
            return FishLeg(model, LIKELIHOOD, aux_data=x, aux_batch_size=AUX_BATCH, lr=1e-4, **options)

    return build


@dataclass(frozen=True)
class Arm:
    """An optimizer as timed here: `period` steps hold each of its periodic extras once."""

    period: int
    build: Callable[[nn.Module, Tensor], torch.optim.Optimizer]


ARMS = {
    "adamw": Arm(1, lambda model, x: torch.optim.AdamW(model.parameters(), lr=1e-4)),
    "fishleg_learnt": Arm(10, fishleg_arm(q_init="kfac", update_aux_every=10)),
    "fishleg_kfac_only": Arm(50, fishleg_arm(q_init="kfac", learn_q=False, kfac_every=50)),
    "fishleg_identity": Arm(10, fishleg_arm(update_aux_every=10)),
    "fishleg_learnt_unaligned": Arm(10, fishleg_arm(False, q_init="kfac", update_aux_every=10)),
    "fishleg_kfac_only_unaligned": Arm(50, fishleg_arm(False, q_init="kfac", learn_q=False, kfac_every=50)),
    "soap": Arm(10, lambda model, x: SOAPConfig().build(model)),
    "shampoo": Arm(1, lambda model, x: ShampooConfig().build(model)),
    "muon": Arm(1, lambda model, x: MuonConfig().build(model)),
}


def _step(model: nn.Module, opt: torch.optim.Optimizer, x: Tensor, y: Tensor) -> None:
    opt.zero_grad(set_to_none=False)
    LIKELIHOOD.nll(model(x), y).backward()
    opt.step()


def amortised_ms(model: nn.Module, opt: torch.optim.Optimizer, x: Tensor, y: Tensor, steps: int) -> float:
    """Mean ms per step over `steps` steps (whole periods)."""
    sync(x.device)
    start = time.perf_counter()
    for _ in range(steps):
        _step(model, opt, x, y)
    sync(x.device)
    return 1e3 * (time.perf_counter() - start) / steps


def state_bytes(root: object, skip: list[Tensor]) -> int:
    """Bytes of the distinct tensor storages reachable from the optimizer's attributes, state
    and workspaces, other than the model's parameters, their gradients and the data (`skip`)."""
    seen = {t.untyped_storage().data_ptr() for t in skip}
    total, stack, visited = 0, [root], set()
    while stack:
        obj = stack.pop()
        if id(obj) in visited or isinstance(obj, nn.Module):
            continue
        visited.add(id(obj))
        if isinstance(obj, Tensor):
            storage = obj.untyped_storage()
            if storage.data_ptr() not in seen:
                seen.add(storage.data_ptr())
                total += storage.nbytes()
        elif isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set)):
            stack.extend(obj)
        elif hasattr(obj, "__dict__") and not isinstance(obj, type):
            stack.extend(vars(obj).values())
    return total


def mm_rate(d: int, device: torch.device, reps: int = 5) -> float:
    """FLOP/s of torch.mm on two d×d matrices: the machine's rate on this layer's products."""
    a, b = torch.randn(d, d, device=device), torch.randn(d, d, device=device)
    out = torch.empty(d, d, device=device)
    return 2 * d**3 / seconds_per_call(lambda: torch.mm(a, b, out=out), device, reps)


class Meter:
    """Per named callable: the ms spent inside it (synchronised on CUDA), or with `count_flops`
    the FLOPs torch's FlopCounterMode counts inside it."""

    def __init__(self, device: torch.device, count_flops: bool = False) -> None:
        self.device = device
        self.count_flops = count_flops
        self.total: dict[str, float] = defaultdict(float)

    def _measured(self, inner: Callable[..., Any], part: str) -> Callable[..., Any]:
        def measured(*args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
            if self.count_flops:
                with flop_counter() as fc:
                    out = inner(*args, **kwargs)
                self.total[part] += fc.get_total_flops()
                return out
            sync(self.device)
            start = time.perf_counter()
            out = inner(*args, **kwargs)
            sync(self.device)
            self.total[part] += 1e3 * (time.perf_counter() - start)
            return out

        return measured

    @contextlib.contextmanager
    def watching(self, parts: list[tuple[object, str, str]]) -> Iterator[None]:
        """Each (owner, attribute, part): owner.attribute measured as `part` inside the block."""
        restore = []
        for owner, attribute, part in parts:
            inner = getattr(owner, attribute)
            restore.append((owner, attribute, inner, attribute in vars(owner)))
            setattr(owner, attribute, self._measured(inner, part))
        try:
            yield
        finally:
            for owner, attribute, inner, own in reversed(restore):
                setattr(owner, attribute, inner) if own else delattr(owner, attribute)


def aux_profile(d: int, x: Tensor, y: Tensor, steps: int) -> dict[str, float]:
    """FishLeg's aux step (one every step, u = the gradient, Q from K-FAC's start) and its Q·g,
    in ms per step by part, each beside its floor: its counted FLOPs at `mm_rate`."""
    model = mlp(d).to(x.device)
    opt = FishLeg(model, LIKELIHOOD, aux_data=x, aux_batch_size=AUX_BATCH, lr=1e-4, q_init="kfac", update_aux_every=1)
    curvature = opt.curvature
    for _ in range(2):
        _step(model, opt, x, y)
    whole = [(curvature, "maybe_update", "aux_step"), (curvature, "precondition", "qg")]
    flops = Meter(x.device, count_flops=True)
    with flops.watching(whole):
        _step(model, opt, x, y)
    parts = [
        (curvature.probes, "in_step", "probes"),
        (curvature_module, "fisher_vector_product", "fisher_product"),
        (curvature.aux_optimizer, "step", "adam_on_lambda"),
    ]
    for b in opt.curvature.blocks:
        parts += [(b.structure, "lambda_grad", "lambda_grad"), (b.structure, "refresh", "refresh")]
    watch = Meter(x.device)
    with watch.watching(whole + parts):
        for _ in range(steps):
            _step(model, opt, x, y)
    rate = statistics.median(mm_rate(d, x.device) for _ in range(3))
    ms = {part: total / steps for part, total in watch.total.items()}
    named = ("probes", "fisher_product", "lambda_grad", "adam_on_lambda", "refresh")
    ms["aux_other"] = ms["aux_step"] - sum(ms[p] for p in named)
    ms["aux_floor"] = 1e3 * flops.total["aux_step"] / rate
    ms["qg_floor"] = 1e3 * flops.total["qg"] / rate
    return {
        **{f"{k}_ms": round(v, 2) for k, v in ms.items()},
        "aux_over_floor": round(ms["aux_step"] / ms["aux_floor"], 3),
        "qg_over_floor": round(ms["qg"] / ms["qg_floor"], 3),
        "aux_gflop": round(flops.total["aux_step"] / 1e9, 2),
        "qg_gflop": round(flops.total["qg"] / 1e9, 2),
        "mm_gflops": round(rate / 1e9, 1),
    }


def at_width(d: int, arms: list[str], rounds: int, device: torch.device) -> dict[str, Any]:
    """Every arm at width d: ms per step (median over alternating rounds), its ratio to AdamW's,
    and its state in MB."""
    x = torch.randn(BATCH, d, device=device)
    y = torch.randint(CLASSES, (BATCH,), device=device)
    runs = {}
    for name in arms:
        model = mlp(d).to(device)
        runs[name] = (model, ARMS[name].build(model, x))
        for _ in range(max(2, ARMS[name].period)):  # each periodic extra once, untimed (first calls cost more)
            _step(*runs[name], x, y)
    times: dict[str, list[float]] = {name: [] for name in arms}
    for _ in range(rounds):
        for name in arms:
            model, opt = runs[name]
            times[name].append(amortised_ms(model, opt, x, y, ARMS[name].period))
    row: dict[str, Any] = {"d": d}
    for name in arms:
        model, opt = runs[name]
        skip = [t for p in model.parameters() for t in (p, p.grad) if t is not None] + [x, y]
        row[name] = {
            "ms": round(statistics.median(times[name]), 2),
            "state_mb": round(state_bytes(opt, skip) / 2**20, 2),
        }
        if "adamw" in arms:
            row[name]["vs_adamw"] = round(statistics.median(times[name]) / statistics.median(times["adamw"]), 3)
    return row


def exponents(rows: list[dict[str, Any]], arms: list[str]) -> dict[str, float]:
    """Per arm, the slope of the least-squares line through (log d, log ms)."""
    logs = [math.log(r["d"]) for r in rows]
    mean_log = statistics.fmean(logs)
    out = {}
    for name in arms:
        ys = [math.log(r[name]["ms"]) for r in rows]
        mean_y = statistics.fmean(ys)
        cov = sum((a - mean_log) * (b - mean_y) for a, b in zip(logs, ys))
        out[name] = round(cov / sum((a - mean_log) ** 2 for a in logs), 2)
    return out


def figure(rows: list[dict[str, Any]], arms: list[str], path: Path) -> None:
    """ms per step against width, log–log, one line per arm; and each arm's ratio to AdamW's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    widths = [r["d"] for r in rows]
    colours = dict(zip(arms, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name in arms:
        style = {"marker": "o", "color": colours[name], "label": name}
        left.plot(widths, [r[name]["ms"] for r in rows], **style)
        if name != "adamw" and "vs_adamw" in rows[0][name]:
            right.plot(widths, [r[name]["vs_adamw"] for r in rows], **style)
    for ax, label in ((left, "ms per step"), (right, "÷ AdamW's step")):
        ax.set(xscale="log", yscale="log", xlabel="hidden width d", ylabel=label)
        ax.set_xticks(widths, [str(w) for w in widths])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--widths", type=int, nargs="+", default=[256, 512, 1024, 2048])
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=[a for a in ARMS if "unaligned" not in a])
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds over the arms (medians reported)")
    parser.add_argument("--profile-steps", type=int, default=3, help="steps the aux-step profile averages")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--figure", type=Path, help="write the figure (PNG) here")
    parser.add_argument("--out", type=Path, help="also write the summary JSON to this file")
    parser.add_argument("--replot", type=Path, help="draw --figure from a summary JSON written by --out, and stop")
    args = parser.parse_args()
    if args.replot is not None:
        rows = json.loads(args.replot.read_text())["widths"]
        figure(rows, [k for k in rows[0] if k != "d"], args.figure)
        return
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    result: dict[str, Any] = {"benchmark": "width_scaling", "device": str(device), "threads": args.threads}
    if device.type == "cuda":
        result["card"] = torch.cuda.get_device_name(device)
    rows, profiles = [], {}
    for d in args.widths:
        rows.append(at_width(d, args.arms, args.rounds, device))
        x = torch.randn(BATCH, d, device=device)
        profiles[d] = aux_profile(d, x, torch.randint(CLASSES, (BATCH,), device=device), args.profile_steps)
        print(json.dumps({**rows[-1], "aux_profile": profiles[d]}), flush=True)
    result.update({"widths": rows, "aux_profile": profiles})
    if len(rows) > 1:
        result["exponent"] = exponents(rows, args.arms)
    if args.figure is not None:
        figure(rows, args.arms, args.figure)
    report(result, args.out)


if __name__ == "__main__":
    main()
