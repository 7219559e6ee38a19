"""Does a trial end cost the same at trial 500 as at trial 1? Per-trial overhead over a long study.

One worker runs a study of ``--trials`` trials of a near-free objective through the runner that
production runs (``StudyRunner``: leases, the study lock, ``ask``/``tell``, the trial folder's
lifecycle, per-trial JSON logs, progress lines), with the study retention that production runs at
each trial end (``StudyRetention.trial_finished``, under the retention lock). The objective does
what a one-epoch trial does to the study folder and nothing else: it commits one weights-only
checkpoint of a tiny model through the real checkpoint manager (manifest, SHA-256, fsync), so
retention has real manifests to rank and prune. MLflow tracking is left out (a fixed number of
calls per trial to a server, not study-level work). Logging is configured from the project's
``conf/logging.yml`` (Kedro's rich handler on stdout) with the project's masking and context.

Two arms, each a fresh process and a fresh study, interleaved in a rotating order over
``--rounds`` rounds:

* ``index``      the study retention as shipped: the ranking index, O(1) manifests per trial end;
* ``full-scan``  the same code with the index deleted before every trial end, so every trial end
  ranks every finished trial from its manifest (what every trial end did before the index).

For each arm and round: the median per-trial overhead over the first and the last ``--window``
trials, both as *gap* (one trial's objective returned -> the next one's objective starts: tell,
finalize, retention, progress, claim, ask) and as *cycle* (start to next start), their ratio
last/first, and the bytes the process wrote to stdout per trial over the same windows. The report
gives the median and the spread (min..max) over rounds. Acceptance: the ``index`` arm's gap
ratio <= 1.2.

    .venv/bin/python bench/many_trials_bench.py                    # 500 trials x 2 arms x 3 rounds
    .venv/bin/python bench/many_trials_bench.py --trials 100 --rounds 1   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ARMS = ("index", "full-scan")
METRIC = "val_f1_macro"
ROOT = Path(__file__).resolve().parents[1]


def child(arm: str, n_trials: int, sampler: str, workdir: Path, out: Path) -> None:
    """One study in this process; writes the per-trial clock and stdout sizes to ``out``."""
    import logging.config

    import torch
    import yaml

    from mental_health_hpo.checkpointing import (
        CheckpointManager,
        CheckpointOptions,
        RetentionPolicy,
        StudyRetention,
    )
    from mental_health_hpo.hpo.coordination import coordination_for
    from mental_health_hpo.hpo.runner import StudyHooks, StudyRunner, TrialContext
    from mental_health_hpo.hpo.search_space import SearchSpace
    from mental_health_hpo.hpo.study import StudyConfig, open_study
    from mental_health_hpo.ops.logs import install_project_logging
    from mental_health_hpo.workspace.layout import StudyLayout

    logging.config.dictConfig(yaml.safe_load((ROOT / "conf" / "logging.yml").read_text()))
    install_project_logging()
    space = SearchSpace.from_params({"x": {"type": "float", "low": 0.0, "high": 1.0}})
    config = StudyConfig(
        name="many",
        storage=f"sqlite:///{workdir / 'optuna.db'}",
        n_trials=n_trials,
        sampler=sampler,  # type: ignore[arg-type]
        pruner="none",
        experiments_dir=str(workdir),
        torch_threads=1,
    )
    study = open_study(config, space, workdir, METRIC)
    study_dir = config.study_dir(workdir)
    coordination = coordination_for(config, workdir)
    retention = StudyRetention(
        study_dir, RetentionPolicy.load("default"), METRIC, coordination.lock
    )
    index = StudyLayout(study_dir).retention_index
    starts: list[float] = []
    ends: list[float] = []
    stdout_at_start: list[int] = []

    def objective(context: TrialContext) -> float:
        sys.stdout.flush()
        sys.stderr.flush()
        stdout_at_start.append(os.fstat(1).st_size)
        starts.append(time.perf_counter())
        value = float(context.sampled["x"])
        options = CheckpointOptions(metric_name=METRIC, watch_disk=False)
        with CheckpointManager(context.folder.checkpoints, options) as checkpoints:
            checkpoints.save(
                epoch=0,
                step=1,
                metrics={METRIC: value, "loss": 1.0 - value},
                weights=torch.nn.Linear(8, 4).state_dict(),
            )
        context.folder.update(best_value=value, best_epoch=0)
        ends.append(time.perf_counter())
        return value

    def trial_end(frozen: Any, folder: Any) -> None:
        if arm == "full-scan":
            index.unlink(missing_ok=True)
        retention.trial_finished(folder.path)

    hooks = StudyHooks(on_trial_end=trial_end)
    StudyRunner(study, config, space, {}, objective, study_dir, coordination, hooks).run()
    sys.stdout.flush()
    sys.stderr.flush()
    stdout_at_start.append(os.fstat(1).st_size)
    out.write_text(json.dumps({"starts": starts, "ends": ends, "stdout": stdout_at_start}))


def windows(clock: dict[str, list[float]], window: int) -> dict[str, float]:
    """Per-trial gap, cycle (medians: one fsync stalled by another process's I/O is not the
    study's cost) and mean stdout bytes over the first and the last ``window`` trials."""
    starts, ends, stdout = clock["starts"], clock["ends"], clock["stdout"]
    n = len(starts)
    gaps = [starts[i + 1] - ends[i] for i in range(n - 1)]
    cycles = [starts[i + 1] - starts[i] for i in range(n - 1)]
    written = [stdout[i + 1] - stdout[i] for i in range(n)]
    first, last = slice(0, window), slice(n - 1 - window, n - 1)
    row = {
        "gap_first_s": statistics.median(gaps[first]),
        "gap_last_s": statistics.median(gaps[last]),
        "cycle_first_s": statistics.median(cycles[first]),
        "cycle_last_s": statistics.median(cycles[last]),
        "stdout_first_b": statistics.fmean(written[:window]),
        "stdout_last_b": statistics.fmean(written[n - window :]),
        "stdout_per_trial_b": (stdout[-1] - stdout[0]) / n,
    }
    row["gap_ratio"] = row["gap_last_s"] / row["gap_first_s"]
    row["cycle_ratio"] = row["cycle_last_s"] / row["cycle_first_s"]
    return row


def run_arm(arm: str, args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="many_trials_") as tmp:
        work, out = Path(tmp), Path(tmp) / "clock.json"
        stdout = work / "stdout.log"
        command = [sys.executable, __file__, "--child", arm, "--trials", str(args.trials)]
        command += ["--sampler", args.sampler, "--workdir", str(work), "--out", str(out)]
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "120"}
        with stdout.open("wb") as handle:
            done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
        if done.returncode != 0:
            raise SystemExit(f"arm {arm} failed:\n{stdout.read_text()[-4000:]}")
        if args.keep_clock:
            args.keep_clock.mkdir(parents=True, exist_ok=True)
            (args.keep_clock / f"{arm}-{len(list(args.keep_clock.iterdir()))}.json").write_text(
                out.read_text()
            )
        return windows(json.loads(out.read_text()), args.window)


def spread(values: list[float], fmt: str) -> str:
    low, mid, high = (format(v, fmt) for v in (min(values), statistics.median(values), max(values)))
    return f"{mid} ({low}..{high})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument("--sampler", default="random", choices=("random", "tpe"))
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--keep-clock", type=Path, help="folder for each arm's per-trial clock")
    parser.add_argument("--child", choices=ARMS)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.trials, args.sampler, args.workdir, args.out)
        return
    arms = args.arms.split(",")
    results: dict[str, list[dict[str, float]]] = {arm: [] for arm in arms}
    print(f"load average before: {os.getloadavg()}", flush=True)
    for round_ in range(args.rounds):
        for arm in arms[round_ % len(arms) :] + arms[: round_ % len(arms)]:
            started = time.monotonic()
            row = run_arm(arm, args)
            results[arm].append(row)
            print(
                f"round {round_ + 1} {arm:9s} gap {row['gap_first_s'] * 1e3:6.1f} -> "
                f"{row['gap_last_s'] * 1e3:6.1f} ms (x{row['gap_ratio']:.2f}), cycle "
                f"{row['cycle_first_s'] * 1e3:6.1f} -> {row['cycle_last_s'] * 1e3:6.1f} ms "
                f"(x{row['cycle_ratio']:.2f}), stdout {row['stdout_first_b']:.0f} -> "
                f"{row['stdout_last_b']:.0f} B/trial ({time.monotonic() - started:.0f} s)",
                flush=True,
            )
    print(f"load average after: {os.getloadavg()}")
    w = args.window
    print(
        f"\n{args.trials} trials, sampler {args.sampler}, {args.rounds} round(s); "
        f"median (min..max) over rounds; first/last = trials 1-{w} / the last {w}"
    )
    for arm in arms:
        rows = results[arm]

        def col(key: str, rows: list[dict[str, float]] = rows) -> list[float]:
            return [r[key] for r in rows]

        print(
            f"{arm:9s} gap first {spread([v * 1e3 for v in col('gap_first_s')], '.1f')} ms, "
            f"last {spread([v * 1e3 for v in col('gap_last_s')], '.1f')} ms, "
            f"ratio {spread(col('gap_ratio'), '.2f')}"
        )
        print(
            f"{'':9s} cycle first {spread([v * 1e3 for v in col('cycle_first_s')], '.1f')} ms, "
            f"last {spread([v * 1e3 for v in col('cycle_last_s')], '.1f')} ms, "
            f"ratio {spread(col('cycle_ratio'), '.2f')}"
        )
        print(
            f"{'':9s} stdout first {spread(col('stdout_first_b'), '.0f')} B/trial, "
            f"last {spread(col('stdout_last_b'), '.0f')} B/trial, "
            f"whole study {spread(col('stdout_per_trial_b'), '.0f')} B/trial"
        )
    if "index" in results:
        ratio = statistics.median(r["gap_ratio"] for r in results["index"])
        verdict = "PASS" if ratio <= 1.2 else "FAIL"
        print(f"\nacceptance (index arm, gap last/first <= 1.2): x{ratio:.2f} {verdict}")


if __name__ == "__main__":
    main()
