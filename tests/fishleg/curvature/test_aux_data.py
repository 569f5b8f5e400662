"""Aux data: seeded draws from tensors, datasets, iterables and a training loop's DataLoader."""

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

from fishleg import FishLeg, GaussianLikelihood, aux_from_loader
from fishleg.curvature.aux_data import AuxSampler

CPU = torch.device("cpu")


def test_aux_data_as_a_dataset_draws_seeded_rows_and_resumes():
    x = torch.randn(50, 3)
    data = TensorDataset(x, torch.zeros(50))
    a = AuxSampler(data, 8, CPU, seed=5)
    first = a.draw()
    assert first.shape == (8, 3) and all(any(torch.equal(r, xr) for xr in x) for r in first)
    state = a.state_dict()
    second = a.draw()
    b = AuxSampler(data, 8, CPU, seed=0)
    b.load_state_dict(state)
    torch.testing.assert_close(b.draw(), second)
    torch.testing.assert_close(AuxSampler(data, 8, CPU, seed=5).draw(), first)
    assert torch.equal(a.peek(), x[:2])


def test_aux_data_as_an_iterable_of_batches_cycles():
    batches = [(torch.full((6, 3), float(i)), torch.zeros(6)) for i in range(2)]
    sampler = AuxSampler(batches, 4, CPU, seed=0)
    drawn = [sampler.draw() for _ in range(3)]
    assert [d.shape for d in drawn] == [(4, 3)] * 3
    assert [d[0, 0].item() for d in drawn] == [0.0, 1.0, 0.0]
    assert sampler.peek() is None
    with pytest.raises(ValueError, match="empty iterable"):
        AuxSampler([], 4, CPU, seed=0).draw()
    with pytest.raises(ValueError, match="aux_data must be"):
        AuxSampler(3, 4, CPU, seed=0)


def test_fishleg_trains_with_a_dataset_as_aux_data():
    x = torch.randn(64, 3)
    y = x @ torch.randn(3, 2)
    model = nn.Linear(3, 2)
    opt = FishLeg(model, GaussianLikelihood(), aux_data=TensorDataset(x, y), update_aux_every=1, aux_batch_size=16)
    losses = []
    for _ in range(20):
        opt.zero_grad()
        loss = GaussianLikelihood().nll(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert opt.curvature.aux_step_count == 20 and losses[-1] < losses[0]


class _Pairs(torch.utils.data.Dataset):
    """Items as a tokenizer's dicts: {"input_ids": (4,), "labels": (4,)}."""

    def __init__(self, n: int) -> None:
        self.ids = torch.arange(n * 4).view(n, 4)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": -self.ids[i]}


def _stack_dicts(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {key: torch.stack([item[key] for item in items]) * 10 for key in items[0]}


def test_aux_from_loader_collates_seeded_draws_with_the_loaders_collate_fn_and_resumes():
    data = _Pairs(30)
    loader = DataLoader(data, batch_size=7, shuffle=True, collate_fn=_stack_dicts)
    sampler = AuxSampler(aux_from_loader(loader, inputs="input_ids"), 5, CPU, seed=3)
    indices = torch.randint(30, (5,), generator=torch.Generator().manual_seed(3))
    first = sampler.draw()
    torch.testing.assert_close(first, data.ids[indices] * 10)  # the loader's collate, not default_collate
    state = sampler.state_dict()
    second = sampler.draw()
    restored = AuxSampler(aux_from_loader(loader, inputs="input_ids"), 5, CPU, seed=0)
    restored.load_state_dict(state)
    torch.testing.assert_close(restored.draw(), second)
    torch.testing.assert_close(sampler.peek(), data.ids[:2] * 10)


def test_aux_from_loader_takes_the_first_element_of_tuple_batches():
    x = torch.randn(20, 3)
    sampler = AuxSampler(aux_from_loader(DataLoader(TensorDataset(x, torch.zeros(20)), batch_size=4)), 6, CPU, seed=0)
    drawn = sampler.draw()
    assert drawn.shape == (6, 3) and all(any(torch.equal(r, xr) for xr in x) for r in drawn)


def test_aux_from_loader_names_the_keys_when_the_input_key_is_wrong():
    sampler = AuxSampler(aux_from_loader(DataLoader(_Pairs(8), batch_size=2)), 2, CPU, seed=0)
    with pytest.raises(ValueError, match=r"keys \['input_ids', 'labels'\].*inputs='input_ids'"):
        sampler.draw()
    with pytest.raises(
        ValueError,
        match=r"expected a torch DataLoader or an object with a train_dataloader\(\) method .*, got list",
    ):
        aux_from_loader([1, 2])


def test_aux_from_loader_cycles_an_iterable_dataset():
    class Stream(IterableDataset):
        def __iter__(self):
            return iter([torch.full((3,), float(i)) for i in range(3)])

    sampler = AuxSampler(aux_from_loader(DataLoader(Stream(), batch_size=2)), 2, CPU, seed=0)
    assert [sampler.draw()[:, 0].tolist() for _ in range(3)] == [[0.0, 1.0], [2.0], [0.0, 1.0]]
    assert sampler.peek() is None
