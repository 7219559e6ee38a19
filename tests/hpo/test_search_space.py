from __future__ import annotations

import optuna
import pytest

from mental_health_hpo.hpo.search_space import SearchSpace, merge

SPACE = {
    "model": {
        "loss": {"type": "categorical", "choices": ["bce", "focal"]},
        "focal_gamma": {"type": "float", "low": 1.0, "high": 3.0, "when": {"model.loss": "focal"}},
        "coupling": {"type": "categorical", "choices": ["independent", "coupled"]},
        "coupling_method": {
            "type": "categorical",
            "choices": ["concat", "add"],
            "when": {"model.coupling": ["coupled"]},
        },
    },
    "trainer": {
        "lr": {"type": "float", "low": 1e-5, "high": 1e-3, "log": True},
        "epochs": {"type": "int", "low": 1, "high": 4},
    },
}


def test_conditional_parameters_appear_only_when_their_condition_holds() -> None:
    space = SearchSpace.from_params(SPACE)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen_focal = seen_bce = False
    for _ in range(30):
        sampled = space.suggest(study.ask(), base={})
        assert ("model.focal_gamma" in sampled) == (sampled["model.loss"] == "focal")
        assert ("model.coupling_method" in sampled) == (sampled["model.coupling"] == "coupled")
        assert 1e-5 <= sampled["trainer.lr"] <= 1e-3
        assert sampled["trainer.epochs"] in {1, 2, 3, 4}
        seen_focal |= sampled["model.loss"] == "focal"
        seen_bce |= sampled["model.loss"] == "bce"
    assert seen_focal and seen_bce


def test_conditions_can_refer_to_base_values() -> None:
    space = SearchSpace.from_params({"model": {"focal_gamma": SPACE["model"]["focal_gamma"]}})
    trial = optuna.create_study().ask()
    assert "model.focal_gamma" in space.suggest(trial, base={"model": {"loss": "focal"}})
    assert space.suggest(optuna.create_study().ask(), base={"model": {"loss": "bce"}}) == {}


def test_merge_overrides_base_with_sampled_values() -> None:
    merged = merge({"model": {"loss": "bce", "dropout": 0.1}}, {"model.loss": "focal"})
    assert merged == {"model": {"loss": "focal", "dropout": 0.1}}


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"trainer": {"lr": {"type": "gaussian"}}}, r"trainer\.lr\.type"),
        ({"trainer": {"lr": {"type": "float", "low": 1}}}, "needs low and high"),
        ({"trainer": {"lr": {"type": "float", "low": 0, "high": 1, "log": True}}}, "log scale"),
        ({"trainer": {"lr": 0.1}}, "fixed values belong in hpo.base"),
        ({"model": {"loss": {"type": "categorical", "choices": []}}}, r"model\.loss\.choices"),
        (
            {
                "a": {"type": "int", "low": 1, "high": 2, "when": {"b": 1}},
                "b": {"type": "int", "low": 1, "high": 2},
            },
            "declared after it",
        ),
    ],
)
def test_bad_spaces_name_the_field(space: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SearchSpace.from_params(space)


def test_grid_of_categorical_and_stepped_parameters() -> None:
    space = SearchSpace.from_params(
        {
            "a": {"type": "categorical", "choices": ["x", "y"]},
            "b": {"type": "int", "low": 1, "high": 3, "step": 1},
        }
    )
    assert space.grid() == {"a": ["x", "y"], "b": [1, 2, 3]}
    with pytest.raises(ValueError, match="conditional"):
        SearchSpace.from_params(SPACE).grid()
