"""The CURVES autoencoder workload: the papers' sizes and architecture."""

from torch import nn

from tuning.run.config import WorkloadConfig
from tuning.workloads import build_workload


def test_the_papers_autoencoder_784_400_200_100_50_25_6_mirrored():
    w = build_workload(WorkloadConfig(name="curves_autoencoder", train_size=100, test_size=10), seed=0)
    widths = [(m.in_features, m.out_features) for m in w.model if isinstance(m, nn.Linear)]
    dims = [784, 400, 200, 100, 50, 25, 6, 25, 50, 100, 200, 400, 784]
    assert widths == list(zip(dims[:-1], dims[1:]))
    assert (len(w.train_x), len(w.val_x), len(w.test_x)) == (90, 10, 10)
    assert w.model(w.train_x[:4]).shape == (4, 784)
