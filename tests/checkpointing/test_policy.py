"""Retention policy: validation names the bad field; named policies ship twice and agree."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mental_health_hpo.checkpointing import RetentionPolicy
from mental_health_hpo.checkpointing._errors import PolicyError
from mental_health_hpo.checkpointing._retention import NAMED_POLICIES, parse_size

PACKAGED = Path(__file__).parents[2] / "src" / "mental_health_hpo" / "checkpointing" / "policies"


def test_defaults_match_the_issue() -> None:
    policy = RetentionPolicy()
    assert (policy.keep_last_n, policy.keep_best_k, policy.keep_best_k_max) == (1, 1, 2)
    assert policy.max_total_size == 10 * 10**9
    assert policy.min_interval_epochs == 1 and policy.disk_space_threshold_percent == 10
    assert RetentionPolicy.load("default") == policy


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("keep_last_n", 0),
        ("keep_best_k", 0),
        ("keep_best_k_max", 0),
        ("min_interval_epochs", 0),
        ("keep_best_trials", 0),
        ("max_total_size", "ten gigs"),
        ("max_total_size", 0),
        ("disk_space_threshold_percent", 100),
        ("keep_last_n", 1.5),
    ],
)
def test_invalid_field_is_named(field: str, value: object) -> None:
    with pytest.raises(PolicyError, match=field):
        RetentionPolicy(**{field: value})


def test_unknown_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "p.yml"
    path.write_text("keep_last_n: 2\nkeep_lats_n: 3\n")
    with pytest.raises(PolicyError, match="keep_lats_n"):
        RetentionPolicy.load(path)
    with pytest.raises(PolicyError, match="neither one of default"):
        RetentionPolicy.load("nonexistent")


def test_sizes_parse() -> None:
    assert parse_size("10GB") == 10**10 and parse_size("512MiB") == 512 * 2**20
    assert parse_size(123) == 123 and parse_size("1.5 KB") == 1500


@pytest.mark.parametrize("name", NAMED_POLICIES)
def test_a_named_policy_is_its_packaged_file(name: str, tmp_path: Path) -> None:
    """The packaged YAML is the one source of a named policy; a copy given as a path (a user's
    own policy file) loads to the same policy."""
    packaged = yaml.safe_load((PACKAGED / f"{name}.yml").read_text())
    assert RetentionPolicy.load(name) == RetentionPolicy(**packaged)
    copy = tmp_path / f"{name}.yml"
    copy.write_text((PACKAGED / f"{name}.yml").read_text())
    assert RetentionPolicy.load(copy) == RetentionPolicy.load(name)


def test_named_policies_are_ordered_by_how_much_they_keep() -> None:
    aggressive, minimal = RetentionPolicy.load("aggressive"), RetentionPolicy.load("minimal")
    default, permissive = RetentionPolicy.load("default"), RetentionPolicy.load("permissive")
    assert aggressive.max_total_size < minimal.max_total_size < default.max_total_size
    assert default.max_total_size < permissive.max_total_size
    assert permissive.keep_last_n > default.keep_last_n
    assert RetentionPolicy.load("default", {"keep_last_n": 4}).keep_last_n == 4


def test_emergency_policy_allows_zero_last() -> None:
    emergency = RetentionPolicy(keep_last_n=3, keep_best_k=2, keep_best_k_max=4).as_emergency()
    assert (emergency.keep_last_n, emergency.keep_best_k, emergency.keep_best_k_max) == (0, 1, 1)
