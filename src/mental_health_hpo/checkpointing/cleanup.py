"""Find and (only when told) remove orphans under an experiments folder. Dry run by default::

    python -m mental_health_hpo.checkpointing.cleanup experiments/ [--apply]

Run it while no training writes to the folder (an in-flight temp file looks like an orphan).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mental_health_hpo.checkpointing._recovery import (
    Orphan,
    find_orphans,
    remove_orphans,
    sweep_uncommitted,
    uncommitted_in,
)
from mental_health_hpo.ops.locations import UnsupportedLocationError, local_folder

__all__ = [
    "Orphan",
    "find_orphans",
    "main",
    "remove_orphans",
    "sweep_uncommitted",
    "uncommitted_in",
]


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; prints the orphans and removes them only with ``--apply``."""
    parser = argparse.ArgumentParser(
        prog="python -m mental_health_hpo.checkpointing.cleanup", description=__doc__.split("\n")[0]
    )
    parser.add_argument("experiments_dir")
    parser.add_argument("--apply", action="store_true", help="remove them (default: dry run)")
    args = parser.parse_args(argv)
    try:  # Path("s3://b/x") would be the folder "s3:/b/x": a URL is never a path
        folder = local_folder(args.experiments_dir, "experiments_dir")
    except UnsupportedLocationError as error:
        print(error, file=sys.stderr)
        return 2
    if not folder.is_dir():
        print(f"not a directory: {folder}", file=sys.stderr)
        return 2
    orphans = find_orphans(folder)
    for orphan in orphans:
        print(f"{orphan.size:>14}  {orphan.path}  ({orphan.reason})")
    total = sum(o.size for o in orphans)
    if args.apply:
        freed = remove_orphans(orphans)
        print(f"removed {len(orphans)} orphans, {freed} bytes freed")
    else:
        print(f"{len(orphans)} orphans, {total} bytes; dry run, pass --apply to remove them")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
