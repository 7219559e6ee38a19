"""Storage-optimized training and HPO for ReDSM5 criteria matching and evidence binding."""

import os

__version__ = "0.1.0"


def code_version() -> str:
    """The package version, plus the git commit when one is recorded in the environment.

    Project-wide (checkpoint manifests record it, MLflow tags runs with it), so it sits beside
    ``__version__`` rather than in any one package.
    """
    commit = os.environ.get("GIT_COMMIT", "")
    return f"{__version__}+{commit[:12]}" if commit else __version__
