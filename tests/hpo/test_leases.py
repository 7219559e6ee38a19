"""Leases in the study database: one winner per take-over, a lost lease is noticed."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import sqlalchemy as sa

from mental_health_hpo.hpo.leases import Heartbeat, LeaseStore, Worker, trial_resource


def _store(tmp_path: Path, period_s: float) -> LeaseStore:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'leases.db'}", connect_args={"timeout": 30})
    return LeaseStore(engine, "s", period_s)


def test_a_live_lease_is_not_taken_and_an_expired_one_has_one_winner(tmp_path: Path) -> None:
    store = _store(tmp_path, period_s=0.5)
    dead = Worker(host="elsewhere", pid=1)
    assert store.acquire(trial_resource(0), dead) is not None
    assert store.acquire(trial_resource(0), Worker()) is None  # live: left alone
    time.sleep(0.7)  # the holder stopped renewing

    contenders = [Worker() for _ in range(8)]
    won: list[object] = []
    barrier = threading.Barrier(len(contenders))

    def contend(worker: Worker) -> None:
        barrier.wait()
        lease = store.acquire(trial_resource(0), worker)
        if lease is not None:
            won.append(lease)

    threads = [threading.Thread(target=contend, args=(w,)) for w in contenders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1
    assert won[0].previous_owner == dead.owner  # type: ignore[attr-defined]
    assert won[0].generation == 2  # type: ignore[attr-defined]


def test_a_taken_over_lease_is_marked_lost_by_the_heartbeat(tmp_path: Path) -> None:
    store = _store(tmp_path, period_s=0.3)
    stalled = store.acquire(trial_resource(1), Worker())
    assert stalled is not None
    time.sleep(0.4)  # a long pause: the lease expired
    assert store.acquire(trial_resource(1), Worker()) is not None
    beat = Heartbeat(store)
    with beat.holding(stalled):
        beat.beat()
        assert beat.lost(stalled)
    assert not store.renew(stalled)


def test_released_leases_free_the_resource_and_expired_ones_are_listed(tmp_path: Path) -> None:
    store = _store(tmp_path, period_s=0.2)
    me = Worker()
    lease = store.acquire(trial_resource(2), me)
    assert lease is not None and [r.resource for r in store.live("trial:")] == ["trial:2"]
    store.release(lease)
    assert store.live("trial:") == [] and store.expired("trial:") == []
    store.acquire(trial_resource(3), me)
    time.sleep(0.3)
    assert store.expired("trial:") == ["trial:3"]


def test_confirm_renews_a_held_lease_and_tells_a_stalled_worker_at_once(tmp_path: Path) -> None:
    """The check before a checkpoint commit: no waiting for the heartbeat's next beat."""
    store = _store(tmp_path, period_s=0.3)
    held = store.acquire(trial_resource(2), Worker())
    assert held is not None
    beat = Heartbeat(store)  # its thread never started: only confirm() renews
    with beat.holding(held):
        for _ in range(3):
            time.sleep(0.2)
            assert beat.confirm(held)  # each call pushes the expiry on
        assert store.acquire(trial_resource(2), Worker()) is None  # still live
        time.sleep(0.4)  # a stall past the lease
        successor = store.acquire(trial_resource(2), Worker())
        assert successor is not None
        assert not beat.confirm(held)
        assert beat.lost(held)
    assert store.renew(successor)  # the successor's lease is untouched
