"""FishLeg: a second-order optimizer that learns the inverse Fisher (Fisher–Legendre)."""

from fishleg.config import (
    AdamConfig,
    AdamWConfig,
    ConfigError,
    FishLegConfig,
    RunConfig,
    SGDConfig,
    TrainingConfig,
    WorkloadConfig,
    load_config,
    save_config,
)
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
    "AdamConfig",
    "AdamWConfig",
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
    "RunConfig",
    "SGDConfig",
    "TrainingConfig",
    "WeightBiasAdapter",
    "WorkloadConfig",
    "load_config",
    "register_layer",
    "register_likelihood",
    "register_structure",
    "save_config",
]
