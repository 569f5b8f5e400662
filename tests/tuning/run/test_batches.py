"""Batches under data parallelism: every rank draws the same batches and keeps its part, so
the ranks' parts of each batch are, together, exactly the batch one process draws."""

import pytest
import torch
from torch.utils.data import TensorDataset

from tuning.run.batches import DatasetBatches, TensorBatches

CPU = torch.device("cpu")


def _source(kind: str):
    x = torch.arange(50.0).unsqueeze(1)
    y = torch.arange(50)
    return TensorBatches(x, y, CPU) if kind == "tensors" else DatasetBatches(TensorDataset(x, y), CPU)


@pytest.mark.parametrize("kind", ["tensors", "dataset"])
@pytest.mark.parametrize("shuffle", [True, False])
def test_the_ranks_parts_make_up_the_one_process_batch(kind, shuffle):
    def draw(part):
        generator = torch.Generator().manual_seed(3)
        batches = [y.tolist() for _, y in _source(kind).iterate(8, shuffle=shuffle, generator=generator, part=part)]
        return batches, generator.get_state()

    whole, state = draw((0, 1))
    parts = [draw((rank, 2)) for rank in range(2)]
    assert len(whole) == (6 if shuffle else 7)  # full batches only when shuffling
    for rank, (batches, after) in enumerate(parts):
        assert torch.equal(after, state)  # the generator advances as on one process
        assert [len(b) for b in batches] == [len(b[rank::2]) for b in whole]
    for i, batch in enumerate(whole):
        a, b = parts[0][0][i], parts[1][0][i]
        assert not set(a) & set(b) and sorted(a + b) == sorted(batch)
    if shuffle:
        assert whole[0] != list(range(8))  # shuffled: the test compares permutations, not ranges


@pytest.mark.parametrize("kind", ["tensors", "dataset"])
def test_each_rank_shares_the_inputs_for_its_own_auxiliary_batches(kind):
    source = _source(kind)
    shares = [source.share(rank, 2) for rank in range(2)]
    firsts = [s[:, 0].tolist() if kind == "tensors" else [s[i][0].item() for i in range(len(s))] for s in shares]
    assert firsts == [[float(v) for v in range(0, 50, 2)], [float(v) for v in range(1, 50, 2)]]
