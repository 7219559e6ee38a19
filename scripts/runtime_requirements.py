"""Print the runtime image's requirement list, one a line: ``[project].dependencies`` plus the
optional dependencies of the extras the deployed services need (``postgres``: the PostgreSQL
driver of every worker, the init job and the MLflow server of deploy/; ``s3``: s3fs for the
workers' ``experiments_dir=s3://...`` and boto3 for the MLflow server whose artifacts go to a
bucket, deploy/compose.object-store.yml).

    python3 scripts/runtime_requirements.py [pyproject.toml] > requirements.txt

One script for the Dockerfile's ``requirements`` stage and for
tests/distributed/test_deploy_commands.py, which builds a virtualenv from exactly this list: the
image and the test cannot drift apart. Stdlib only (tomllib): it runs on the bare base image.
Versions are not pinned here: the Dockerfile and the test install the list with constraints.txt.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

#: The extras the runtime image installs besides ``[project].dependencies``.
RUNTIME_EXTRAS = ("postgres", "s3")


def runtime_requirements(pyproject: Path) -> list[str]:
    """The requirement strings of the runtime image, in pyproject order, without duplicates."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    extras = project.get("optional-dependencies", {})
    missing = [name for name in RUNTIME_EXTRAS if name not in extras]
    if missing:
        raise SystemExit(
            f"{pyproject}: [project.optional-dependencies] has no {', '.join(missing)} extra, "
            "which the runtime image installs (scripts/runtime_requirements.py RUNTIME_EXTRAS)"
        )
    requirements = list(project["dependencies"])
    for name in RUNTIME_EXTRAS:
        requirements += [r for r in extras[name] if r not in requirements]
    return requirements


def main(argv: list[str]) -> None:
    pyproject = Path(argv[0]) if argv else Path(__file__).resolve().parents[1] / "pyproject.toml"
    print("\n".join(runtime_requirements(pyproject)))


if __name__ == "__main__":
    main(sys.argv[1:])
