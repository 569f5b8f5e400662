"""FishLeg: a second-order optimizer for PyTorch that learns the inverse Fisher (Fisher–Legendre).

A standalone library: it depends on torch, pydantic and PyYAML only. The tuning toolkit
(`fishleg-tune`, package `tuning`) is built around it, never the other way round."""

from fishleg.config import ConfigError, FishLegConfig, load_config
from fishleg.curvature.aux_data import aux_from_loader
from fishleg.layers import LayerAdapter, WeightBiasAdapter, register_layer
from fishleg.likelihoods import (
    BernoulliLikelihood,
    CategoricalLikelihood,
    GaussianLikelihood,
    Likelihood,
    register_likelihood,
)
from fishleg.optimizer import FishLeg
from fishleg.structures import QSpec, QStructure, register_structure

__version__ = "0.1.0"

__all__ = [
    "BernoulliLikelihood",
    "CategoricalLikelihood",
    "ConfigError",
    "FishLeg",
    "FishLegConfig",
    "GaussianLikelihood",
    "LayerAdapter",
    "Likelihood",
    "QSpec",
    "QStructure",
    "WeightBiasAdapter",
    "aux_from_loader",
    "load_config",
    "register_layer",
    "register_likelihood",
    "register_structure",
]
