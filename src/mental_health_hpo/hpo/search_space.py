"""The search space as data: users change it in ``conf/base/parameters_hpo.yml``, not in code.

A space is a nested mapping whose leaves are distributions (a dict with a ``type``)::

    model:
      coupling: {type: categorical, choices: [independent, coupled]}
      coupling_method:
        type: categorical
        choices: [concat, add]
        when: {model.coupling: coupled}      # only sampled when the condition holds
    trainer:
      lr: {type: float, low: 1.0e-5, high: 1.0e-3, log: true}

Example:
    >>> import optuna
    >>> space = SearchSpace.from_params({"trainer": {"lr": {"type": "float", "low": 0.1,
    ...                                                     "high": 0.2}}})
    >>> trial = optuna.create_study().ask()
    >>> 0.1 <= space.suggest(trial, base={})["trainer.lr"] <= 0.2
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna

from mental_health_hpo.mappings import flatten, unflatten

_TYPES = ("categorical", "int", "float")


@dataclass(frozen=True)
class Parameter:
    """One searched parameter, named by its dotted path (``model.loss``)."""

    name: str
    type: str
    choices: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    when: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f"hpo.search_space.{self.name}"
        if self.type not in _TYPES:
            raise ValueError(f"{where}.type must be one of {list(_TYPES)}, got {self.type!r}")
        if self.type == "categorical" and not self.choices:
            raise ValueError(f"{where}.choices must list at least one value")
        if self.type in ("int", "float"):
            if self.low is None or self.high is None:
                raise ValueError(f"{where} needs low and high for type {self.type!r}")
            if self.low > self.high:
                raise ValueError(f"{where}: low ({self.low}) must be <= high ({self.high})")
            if self.log and self.low <= 0:
                raise ValueError(f"{where}: log scale needs low > 0, got {self.low}")

    def applies(self, values: Mapping[str, Any]) -> bool:
        """Whether every condition of ``when`` holds for the values chosen so far."""
        for key, expected in self.when.items():
            allowed = expected if isinstance(expected, list | tuple) else [expected]
            if values.get(key) not in allowed:
                return False
        return True

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.type == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        assert self.low is not None and self.high is not None  # checked in __post_init__
        if self.type == "int":
            step = int(self.step or 1)
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), step=step, log=self.log
            )
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)


@dataclass(frozen=True)
class SearchSpace:
    """The ordered parameters of a study; conditions may only refer to earlier ones or base."""

    parameters: tuple[Parameter, ...]

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> SearchSpace:
        """Build from the nested ``hpo.search_space`` mapping, naming any bad field."""
        found: list[Parameter] = []
        _collect(params, "", found)
        names = {p.name for p in found}
        for position, parameter in enumerate(found):
            earlier = {p.name for p in found[:position]}
            for key in parameter.when:
                if key in names and key not in earlier:
                    raise ValueError(
                        f"hpo.search_space.{parameter.name}.when refers to {key!r}, which is "
                        f"declared after it: declare {key!r} first"
                    )
        return cls(tuple(found))

    def suggest(self, trial: optuna.Trial, base: Mapping[str, Any]) -> dict[str, Any]:
        """Sample one configuration: ``{dotted name: value}`` of the parameters that apply."""
        values: dict[str, Any] = dict(flatten(base))
        chosen: dict[str, Any] = {}
        for parameter in self.parameters:
            if parameter.applies(values):
                chosen[parameter.name] = values[parameter.name] = parameter.suggest(trial)
            else:
                values.pop(parameter.name, None)
        return chosen

    def grid(self) -> dict[str, list[Any]]:
        """The grid for Optuna's GridSampler: categorical choices or stepped int/float ranges."""
        grid: dict[str, list[Any]] = {}
        for p in self.parameters:
            if p.when:
                raise ValueError(
                    f"hpo.search_space.{p.name}: the grid sampler cannot search conditional "
                    f"parameters; remove `when` or use sampler 'tpe' or 'random'"
                )
            if p.type == "categorical":
                grid[p.name] = list(p.choices)
            elif p.step is not None and p.low is not None and p.high is not None:
                count = round((p.high - p.low) / p.step) + 1
                grid[p.name] = [p.low + i * p.step for i in range(count)]
                if p.type == "int":
                    grid[p.name] = [int(v) for v in grid[p.name]]
            else:
                raise ValueError(
                    f"hpo.search_space.{p.name}: the grid sampler needs `step` for "
                    f"{p.type} parameters"
                )
        return grid


def _collect(node: Mapping[str, Any], prefix: str, found: list[Parameter]) -> None:
    for key, value in node.items():
        name = f"{prefix}{key}"
        if not isinstance(value, Mapping):
            raise ValueError(
                f"hpo.search_space.{name} must be a distribution such as "
                f"{{type: categorical, choices: [...]}}; fixed values belong in hpo.base"
            )
        if "type" in value:
            extra = set(value) - {"type", "choices", "low", "high", "step", "log", "when"}
            if extra:
                raise ValueError(f"hpo.search_space.{name}: unknown key(s) {sorted(extra)}")
            found.append(
                Parameter(
                    name=name,
                    type=str(value["type"]),
                    choices=tuple(value.get("choices") or ()),
                    low=value.get("low"),
                    high=value.get("high"),
                    step=value.get("step"),
                    log=bool(value.get("log", False)),
                    when=dict(value.get("when") or {}),
                )
            )
        else:
            _collect(value, f"{name}.", found)


def merge(base: Mapping[str, Any], sampled: Mapping[str, Any]) -> dict[str, Any]:
    """The trial's full configuration: base values overridden by the sampled ones."""
    return unflatten({**flatten(base), **sampled})
