"""A disk-backed outage buffer (an outage loses no metric): JSONL, file-locked, replayed, deleted.

Why on disk: MLflow's own async queue is in memory and drops data after its retries. Training
never waits on the tracking store: a failed publish appends here, and a replay later sends the
lines with their original timestamps, so the replay is idempotent (MLflow deduplicates exact
repeats). The file is removed only after every line was accepted.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

logger = logging.getLogger(__name__)

WARN_BYTES = 100 * 1024 * 1024


@dataclass(frozen=True)
class MetricPoint:
    """One metric value as MLflow stores it."""

    run_id: str
    key: str
    value: float
    step: int
    timestamp_ms: int

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "key": self.key,
            "value": self.value,
            "step": self.step,
            "timestamp_ms": self.timestamp_ms,
        }


Sender = Callable[[str, list[MetricPoint]], None]


class MetricsBuffer:
    """Append-only JSONL buffer of metric points that could not be published."""

    def __init__(self, path: Path, warn_bytes: int = WARN_BYTES) -> None:
        self.path = path
        self.warn_bytes = warn_bytes
        self._lock = FileLock(str(path) + ".lock")
        self._warned = False

    def append(self, points: Iterable[MetricPoint]) -> None:
        """Durably add points (fsynced), warning once when the file passes the size limit."""
        lines = "".join(json.dumps(p.to_json(), sort_keys=True) + "\n" for p in points)
        if not lines:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, self.path.open("a", encoding="utf-8") as handle:
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())
        size = self.path.stat().st_size
        if size > self.warn_bytes and not self._warned:
            self._warned = True
            logger.warning(
                "Metrics buffer %s holds %.0f MB: the tracking store has been unreachable for "
                "a while. Training goes on; check the MLflow server.",
                self.path,
                size / 1e6,
            )

    def pending(self) -> list[MetricPoint]:
        """Everything not yet confirmed as published."""
        if not self.path.exists():
            return []
        with self._lock:
            text = self.path.read_text(encoding="utf-8")
        points = []
        for line in text.splitlines():
            if line.strip():
                try:
                    points.append(MetricPoint(**json.loads(line)))
                except (json.JSONDecodeError, TypeError):
                    logger.warning("Skipping a torn line in %s", self.path)  # a killed append
        return points

    def replay(
        self,
        send: Sender,
        attempts: int = 1,
        first_delay_s: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> bool:
        """Send the buffered points, retrying with exponential backoff; delete only on success.

        Returns True when the buffer is empty afterwards.
        """
        points = self.pending()
        if not points:
            return True
        delay = first_delay_s
        for attempt in range(1, attempts + 1):
            try:
                by_run: dict[str, list[MetricPoint]] = {}
                for point in points:
                    by_run.setdefault(point.run_id, []).append(point)
                for run_id, run_points in by_run.items():
                    send(run_id, run_points)
            except Exception as error:  # the store is still down
                logger.info("Replay of %d buffered metrics failed: %s", len(points), error)
                if attempt < attempts:
                    sleep(delay)
                    delay *= 2
                continue
            with self._lock:
                # Points appended while we were sending stay in the file.
                current = self.path.read_text(encoding="utf-8").splitlines(keepends=True)
                sent = len(points)
                rest = current[sent:] if len(current) >= sent else []
                if rest:
                    self.path.write_text("".join(rest), encoding="utf-8")
                else:
                    self.path.unlink(missing_ok=True)
            logger.info("Replayed %d buffered metrics into the tracking store", len(points))
            return not rest
        return False
