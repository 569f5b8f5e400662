"""How a replay answers a config its searcher suggests: the learning curve a trial of it would
train, and that config's quality (its expected final value), from a recorded table.

`Nearest` answers with the closest recorded config, on one of its recorded seeds (Syne Tune's
blackbox-repository lookup): every answer is a real run, but a search that refines near a good
config keeps landing on the same recorded neighbour. `Surrogate` answers with a Gaussian
process fitted to every epoch of every recorded run (the surrogate benchmarks of HPOBench and
YAHPO): the curve varies smoothly with the config, so refining pays, and the seed noise is a
recorded run's own deviation from its config's mean."""

from __future__ import annotations

import math
import random
import statistics
import warnings
from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import optuna
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
from typing_extensions import override

from tuning.replay.table import Curve, Table
from tuning.sweep.space import DefineByRun
from tuning.sweep.spec import ParamSpec

__all__ = ["LOOKUPS", "Lookup", "Nearest", "Surrogate", "nearest"]


def _position(p: ParamSpec, value: Any) -> float | None:
    """A value's place in its range on [0, 1] (log ranges by log); None for a category."""
    if p.type == "categorical":
        return None
    low, high, v = float(p.low), float(p.high), float(value)
    if p.log:
        low, high, v = math.log(low), math.log(high), math.log(v)
    return 0.0 if high == low else (v - low) / (high - low)


def _distance(space: dict[str, ParamSpec], a: dict[str, Any], b: dict[str, Any]) -> float:
    """Squared distance of two configs: each range on [0, 1], 1 per differing category or per
    parameter one config has and the other lacks (a conditional)."""
    total = 0.0
    for name, p in space.items():
        if (name in a) != (name in b):
            total += 1.0
        elif name in a:
            pa, pb = _position(p, a[name]), _position(p, b[name])
            total += float(a[name] != b[name]) if pa is None or pb is None else (pa - pb) ** 2
    return total


def nearest(space: dict[str, ParamSpec], table: Table, params: dict[str, Any]) -> int:
    """The recorded config closest to `params` (the lowest index among equals)."""
    return min(table.curves, key=lambda i: (_distance(space, params, table.params[i]), i))


def features(space: dict[str, ParamSpec], params: dict[str, Any]) -> list[float]:
    """A config as a point for a regression: each range's position on [0, 1], one indicator per
    choice of a category; a parameter the config lacks (a conditional) sits at -1."""
    out: list[float] = []
    for name, p in space.items():
        if p.type == "categorical":
            out += [float(name in params and params[name] == c) for c in p.choices or []]
        else:
            out.append(-1.0 if name not in params else _position(p, params[name]))  # type: ignore[arg-type]
    return out


class Lookup(ABC):
    """A table's answer to a suggested config."""

    def __init__(self, space: dict[str, ParamSpec], table: Table) -> None:
        self.space, self.table = space, table

    @abstractmethod
    def run(self, params: dict[str, Any], rng: random.Random) -> tuple[Curve, float | None]:
        """The curve a trial of `params` trains (its `config` the nearest recorded one, whose
        seconds it takes) and the quality a sweep that chose it would get."""

    @abstractmethod
    def best(self) -> float:
        """The best quality a search could find."""


class Nearest(Lookup):
    """The closest recorded config, on one of its seeds; quality its seed-averaged final value."""

    @override
    def run(self, params: dict[str, Any], rng: random.Random) -> tuple[Curve, float | None]:
        config = nearest(self.space, self.table, params)
        return rng.choice(self.table.curves[config]), self.table.quality(config)

    @override
    def best(self) -> float:
        return self.table.best()[1]


class Surrogate(Lookup):
    """A Gaussian process (Matérn 5/2 with one length scale per feature, plus white noise) from a
    config's features to its per-epoch values, fitted to every run that finished, on a log scale
    where the values are positive (losses span decades). A suggested config trains the process's
    mean curve plus the deviation of a recorded run from its config's mean (runs of configs
    recorded on two or more seeds, scaled to one seed's spread), with the seconds of the nearest
    recorded config; where that config's recorded run diverged, so does the answer. Quality is
    the mean final value; `best` the lowest (highest) mean over the recorded configs and
    `samples` random ones."""

    def __init__(self, space: dict[str, ParamSpec], table: Table, *, samples: int = 2048, seed: int = 0) -> None:
        super().__init__(space, table)
        runs = [c for i in sorted(table.curves) for c in table.full(i)]
        values = np.array([c.values[: table.budget] for c in runs], dtype=float)
        self.log = bool((values > 0).all())
        y = np.log(values) if self.log else values
        x = np.array([features(space, table.params[c.config]) for c in runs])
        kernel = ConstantKernel() * Matern(length_scale=np.ones(x.shape[1]), nu=2.5) + WhiteKernel(1e-2)
        self.gp = GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=2, random_state=seed)
        with warnings.catch_warnings():  # a noise level at its bound: noiseless runs, not a failed fit
            warnings.filterwarnings("ignore", category=ConvergenceWarning)
            self.gp.fit(x, y)
        means = {i: y[[k for k, c in enumerate(runs) if c.config == i]].mean(axis=0) for i in {c.config for c in runs}}
        self.residuals = [
            (y[k] - means[c.config]) * math.sqrt(n / (n - 1))
            for k, c in enumerate(runs)
            if (n := sum(r.config == c.config for r in runs)) >= 2
        ]
        candidates = [table.params[i] for i in table.curves] + _random_configs(space, samples, seed)
        finals = self._to_table(self.gp.predict(np.array([features(space, p) for p in candidates])))[:, -1]
        self._best = float(finals[np.argmin(table.sign * finals)])

    def _to_table(self, fitted: np.ndarray) -> np.ndarray:
        """Values on the fitted scale back on the table's."""
        return np.exp(fitted) if self.log else fitted

    def _mean(self, params: dict[str, Any]) -> np.ndarray:
        """The process's mean curve for `params`, on the table's scale. Shape: (budget,)."""
        return self._to_table(self.gp.predict(np.array([features(self.space, params)]))[0])

    @override
    def run(self, params: dict[str, Any], rng: random.Random) -> tuple[Curve, float | None]:
        recorded = rng.choice(self.table.curves[nearest(self.space, self.table, params)])
        fitted = self.gp.predict(np.array([features(self.space, params)]))[0]
        quality = float(self._to_table(fitted)[-1])
        if recorded.diverged or len(recorded.values) < self.table.budget:
            return recorded, quality
        noise = rng.choice(self.residuals) if self.residuals else 0.0
        values = tuple(float(v) for v in self._to_table(fitted + noise))
        return Curve(recorded.config, recorded.seed, values, recorded.seconds[: self.table.budget]), quality

    @override
    def best(self) -> float:
        return self._best

    def fidelity(self, folds: int = 5, seed: int = 0) -> dict[str, float]:
        """How well the process predicts configs it was not fitted to: Spearman's ρ and the
        root-mean-square error of the seed-mean final value, each of `folds` parts of the configs
        held out in turn."""
        from scipy.stats import spearmanr

        configs = sorted(i for i in self.table.curves if self.table.quality(i) is not None)
        random.Random(seed).shuffle(configs)
        predicted, actual = [], []
        for k in range(folds):
            held = set(configs[k::folds])
            curves = {i: c for i, c in self.table.curves.items() if i not in held}
            fitted = Surrogate(self.space, Table(self.table.meta, self.table.params, curves), samples=0, seed=seed)
            for i in held:
                predicted.append(float(fitted._mean(self.table.params[i])[-1]))
                actual.append(self.table.quality(i))
        errors = [(p - a) ** 2 for p, a in zip(predicted, actual, strict=True)]
        return {
            "spearman": float(spearmanr(predicted, actual).statistic),
            "rmse": math.sqrt(statistics.fmean(errors)),
        }


def _random_configs(space: dict[str, ParamSpec], n: int, seed: int) -> list[dict[str, Any]]:
    """`n` configs drawn uniformly from the space (log ranges on the log scale), as a sweep's
    random sampler draws them."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    configs = []
    for _ in range(n):
        trial = study.ask()
        DefineByRun(space)(trial)
        configs.append(dict(trial.params))
    return configs


LOOKUPS: dict[str, type[Lookup]] = {"nearest": Nearest, "surrogate": Surrogate}
