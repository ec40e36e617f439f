"""Round robin between owners: ``RunStore.claim_next`` serves the owner who has waited longest.

The pool is simulated in-process: two workers claim, runs of uneven length finish, owners queue
their runs at different times. The property: while an owner has queued runs, no other owner gets a
worker twice before it gets one (nobody waits more than one round), and each owner's runs start in
the order they were queued.
"""

from __future__ import annotations

import random
import sqlite3
from collections import defaultdict
from pathlib import Path

import pytest

from mtl_core.runs.store import RunStore

CONFIG = {"suite": "planted", "strategy": "hard", "method": "ew", "epochs": 1}


def _simulate(store: RunStore, arrivals: dict[int, list[tuple[str, int]]], workers: int, seed: int) -> list[tuple[str, int]]:
    """Run a pool of ``workers`` over the queue; ``arrivals[tick]`` lists (owner, runs) queued at that
    tick. Runs last 1–3 ticks. Returns the claims in order as (owner, run id); asserts the round rule."""
    rng = random.Random(seed)
    running: dict[int, int] = {}  # run id -> tick it ends
    claims: list[tuple[str, int]] = []
    waiting_since: dict[str, int] = {}  # owner -> index in ``claims`` since when it has been waiting
    tick = 0
    while tick <= max(arrivals) or running or store.count_runs("queued"):
        for owner, count in arrivals.get(tick, []):
            store.create_runs([CONFIG] * count, owner=owner)
            waiting_since.setdefault(owner, len(claims))
        for run_id in [run_id for run_id, end in running.items() if end <= tick]:
            store.set_status(run_id, "done")
            del running[run_id]
        while len(running) < workers and (run := store.claim_next(pid=1)) is not None:
            served_others = defaultdict(int)
            for other, _ in claims[waiting_since[run.owner]:]:
                served_others[other] += 1
            assert max(served_others.values(), default=0) <= 1, (
                f"{run.owner} waited while {dict(served_others)} were served: {claims}")
            claims.append((run.owner, run.id))
            waiting_since[run.owner] = len(claims)
            running[run.id] = tick + rng.randint(1, 3)
        tick += 1
    by_owner = defaultdict(list)
    for owner, run_id in claims:
        by_owner[owner].append(run_id)
    assert all(ids == sorted(ids) for ids in by_owner.values())  # first in, first out within an owner
    return claims


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    with RunStore(tmp_path / "runs.db") as opened:
        yield opened


def test_three_owners_two_workers_take_turns(store: RunStore) -> None:
    claims = _simulate(store, {0: [("A", 5), ("B", 5), ("C", 5)]}, workers=2, seed=0)
    assert "".join(owner for owner, _ in claims) == "ABC" * 5


@pytest.mark.parametrize("seed", range(5))
def test_ten_owners_two_workers_arriving_at_different_times(store: RunStore, seed: int) -> None:
    rng = random.Random(seed)
    arrivals: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for index in range(10):
        arrivals[rng.randint(0, 12)].append((f"owner{index}", rng.randint(1, 8)))
    claims = _simulate(store, dict(arrivals), workers=2, seed=seed)
    assert len(claims) == sum(count for batch in arrivals.values() for _, count in batch)


def test_a_latecomer_is_served_before_the_owners_already_served(store: RunStore) -> None:
    lesson = store.create_runs([CONFIG] * 6, owner="alice")
    first = [store.claim_next(pid=1).id for _ in range(2)]
    assert first == lesson[:2]
    bob = store.create_run(CONFIG, owner="bob")
    assert store.claim_next(pid=1).id == bob
    assert store.claim_next(pid=1).id == lesson[2]


def test_claim_run_counts_as_a_turn(store: RunStore) -> None:
    alice = store.create_runs([CONFIG] * 2, owner="alice")
    bob = store.create_runs([CONFIG] * 2, owner="bob")
    store.claim_run(alice[0], pid=1)
    assert store.claim_next(pid=1).id == bob[0]
    assert store.claim_next(pid=1).id == alice[1]


def test_an_upgraded_store_orders_its_owners_by_their_latest_start(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    with RunStore(path) as old:
        alice = old.create_runs([CONFIG] * 2, owner="alice")
        bob = old.create_runs([CONFIG] * 2, owner="bob")
        old.claim_run(bob[0], pid=1)
        old.claim_run(alice[0], pid=1)
    conn = sqlite3.connect(path)  # back to schema 2, which had no turns
    conn.executescript("DROP TABLE owner_turns; PRAGMA user_version = 2;")
    conn.close()
    with RunStore(path) as new:
        assert new.schema_version == 3
        assert dict(new._read("SELECT owner, turn FROM owner_turns")) == {"bob": 1, "alice": 2}
        assert new.claim_next(pid=1).id == bob[1]
