"""Seeds: one call seeds everything; RNG state survives a weights_only checkpoint round trip."""

from __future__ import annotations

import io
import os
import random

import numpy as np
import pytest
import torch

from mental_health_hpo.training.seeds import (
    SeedRecord,
    capture_rng_state,
    data_generator,
    restore_rng_state,
    seed_everything,
    set_deterministic,
    worker_init_fn,
)


def _draw() -> tuple[float, float, float]:
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_same_seed_same_numbers() -> None:
    seed_everything(7)
    first = _draw()
    seed_everything(7)
    assert _draw() == first
    seed_everything(8)
    assert _draw() != first


def test_seed_record_lists_every_seed() -> None:
    record = seed_everything(123)
    assert isinstance(record, SeedRecord)
    values = record.as_dict()
    assert values["seed"] == values["python"] == values["numpy"] == values["torch_cpu"] == 123
    assert values["pythonhashseed"] == "123" == os.environ["PYTHONHASHSEED"]
    assert values["torch_cuda"] == (123 if torch.cuda.is_available() else None)
    assert values["deterministic"] is False


def test_bad_seed_is_rejected() -> None:
    with pytest.raises(ValueError, match="seed"):
        seed_everything(-1)


def test_deterministic_flag_switches_both_ways() -> None:
    try:
        seed_everything(1, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
        seed_everything(1, deterministic=False)
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        set_deterministic(False)


def test_rng_state_round_trips_through_weights_only_load() -> None:
    seed_everything(3)
    random.gauss(0, 1)  # leaves a cached gaussian in python's state
    np.random.standard_normal()
    state = capture_rng_state()
    expected = _draw()

    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)

    seed_everything(99)
    restore_rng_state(loaded)
    assert _draw() == expected


def test_worker_init_fn_seeds_python_and_numpy_from_torch() -> None:
    torch.manual_seed(11)
    worker_init_fn(0)
    a = random.random(), float(np.random.rand())
    torch.manual_seed(11)
    worker_init_fn(0)
    assert (random.random(), float(np.random.rand())) == a


def test_data_generator_is_independent_of_global_rng() -> None:
    first = torch.randint(0, 1000, (5,), generator=data_generator(5))
    torch.manual_seed(0)
    torch.rand(10)
    assert torch.equal(torch.randint(0, 1000, (5,), generator=data_generator(5)), first)
