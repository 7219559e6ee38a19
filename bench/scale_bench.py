"""Many workers on one study: trial throughput, and recovery time after a SIGKILL.

    PYTHONPATH=src python bench/scale_bench.py [--trials 6] [--epochs 2] [--lease-s 3]

1. Throughput: the same trials (random sampler, same seed, tiny BERT, synthetic data) run by
   1 worker (all cores), 1 worker with 1 thread, then 2 workers with 1 torch thread each, on
   one SQLite study (one host).
2. Recovery: 2 workers on one study with ``lease_s``; one is SIGKILLed after its trial's first
   committed epoch; the time until the survivor's first step on that trial (its "started" line
   in the trial's work log), against the lease period. The survivor is on the same host, so the
   same-host shortcut (a dead pid) applies; ``--other-host`` disables it, as if the killed
   worker had run on another machine, to measure the lease path itself.

Needs the PostgreSQL binaries only with ``--postgres``. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKER = r"""
import json, os, sys, time
from pathlib import Path
import torch
from mental_health_hpo.data.model_input import synthetic_model_input
from mental_health_hpo.data.splits import SplitConfig
from mental_health_hpo.data.synthetic import SyntheticConfig
from mental_health_hpo.hpo.objective import TrainingObjective
from mental_health_hpo.hpo.setup import StudySetup
import mental_health_hpo.hpo.leases as leases

root, url, n, epochs, lease_s, threads, model, other_host = sys.argv[1:9]
if other_host == "1":
    leases.LeaseRow.dead_on = lambda self, host: False
torch.set_num_threads(int(threads))
study = {"name": "bench", "storage": url, "n_trials": int(n), "sampler": "random", "seed": 3,
         "pruner": "none", "lease_s": float(lease_s), "torch_threads": int(threads),
         "experiments_dir": root}  # the study folder: <root>/study_bench
lr = {"type": "float", "low": 1e-4, "high": 5e-4, "log": True}
base = {"model": {"encoder": model}, "trainer": {"epochs": int(epochs), "batch_size": 8}}
setup = StudySetup.from_params(
    {"study": study, "search_space": {"trainer": {"lr": lr}}, "base": base}, Path(root)
)
splits = SplitConfig(train=0.8, validation=0.2, test=0.0)
table = synthetic_model_input(SyntheticConfig(n_posts=40, seed=3), splits)
train, validation = table[table["split"] == "train"], table[table["split"] == "validation"]
objective = TrainingObjective(train, validation, setup.base, setup.checkpointing)
setup.runner(setup.open({}, Path(root)), objective).run()
"""


def _start(
    root: Path, url: str, args: argparse.Namespace, threads: int, model: Path
) -> subprocess.Popen:
    env = {**os.environ, "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1"}
    argv = [str(root), url, str(args.trials), str(args.epochs), str(args.lease_s), str(threads),
            str(model), "1" if args.other_host else "0"]  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, *argv], env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=(root / "worker.log").open("ab"),
    )  # fmt: skip


def _throughput(workers: int, threads: int, args: argparse.Namespace, model: Path) -> dict:
    root = Path(tempfile.mkdtemp(prefix=f"scale-{workers}w-"))
    url = f"sqlite:///{root / 'optuna.db'}"
    started = time.perf_counter()
    procs = [_start(root, url, args, threads, model) for _ in range(workers)]
    codes = [p.wait() for p in procs]
    wall = time.perf_counter() - started
    return {
        "workers": workers,
        "torch_threads": threads,
        "trials": args.trials,
        "wall_s": round(wall, 1),
        "trials_per_min": round(60 * args.trials / wall, 2),
        "exit_codes": codes,
    }


def _work(root: Path) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    for log in root.glob("study_bench/trial_*/logs/work.jsonl"):
        lines = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
        out[int(log.parts[-3].removeprefix("trial_"))] = lines
    return out


def _committed(root: Path, number: int) -> int:
    path = root / f"study_bench/trial_{number:04d}/checkpoints/manifest.json"
    try:
        return len(json.loads(path.read_text())["history"])
    except (OSError, ValueError, KeyError):
        return 0


def _recovery(args: argparse.Namespace, model: Path) -> dict:
    root = Path(tempfile.mkdtemp(prefix="scale-recovery-"))
    url = f"sqlite:///{root / 'optuna.db'}"
    procs = [_start(root, url, args, 1, model) for _ in range(2)]
    victim = trial = None
    deadline = time.monotonic() + 600
    while victim is None and time.monotonic() < deadline:
        for number, events in _work(root).items():
            epochs = [e for e in events if e["event"] == "epoch"]
            if epochs and len(epochs) < args.epochs and _committed(root, number) >= 1:
                victim = next((p for p in procs if p.pid == epochs[-1]["pid"]), None)
                trial = number
                break
        time.sleep(0.02)
    assert victim is not None and trial is not None, "no trial committed an epoch"
    os.killpg(victim.pid, signal.SIGKILL)
    killed = time.time()
    survivor = next(p for p in procs if p is not victim)
    survivor.wait()
    resumed = [e for e in _work(root)[trial] if e["pid"] == survivor.pid]
    first = resumed[0]["at"] if resumed else None
    return {
        "lease_s": args.lease_s,
        "other_host": args.other_host,
        "killed_trial": trial,
        "recovery_s": None if first is None else round(first - killed, 2),
        "recovery_in_lease_periods": None
        if first is None
        else round((first - killed) / args.lease_s, 2),
        "survivor_exit": survivor.returncode,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lease-s", type=float, default=3.0)
    parser.add_argument("--other-host", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    from mental_health_hpo.model.tiny import save_tiny_bert

    model = save_tiny_bert(Path(tempfile.mkdtemp(prefix="scale-tiny-")))
    result: dict = {"cpu_count": os.cpu_count(), "load_before": os.getloadavg()}
    if not args.skip_throughput:
        result["one_worker"] = _throughput(1, os.cpu_count() or 1, args, model)
        result["one_worker_one_thread"] = _throughput(1, 1, args, model)
        result["two_workers"] = _throughput(2, 1, args, model)
    result["recovery"] = _recovery(args, model)
    result["load_after"] = os.getloadavg()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
