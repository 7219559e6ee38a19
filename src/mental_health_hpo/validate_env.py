"""Check the environment first: ``python -m mental_health_hpo.validate_env [--cuda] [--hf-token]``.

Why before every ``make hpo``/``make train``: a study that dies after an hour because the
Optuna database is unreachable or the disk fills up wastes the hour. It reads the project's own
configuration (``conf/base`` + ``conf/local`` through Kedro's OmegaConfigLoader) so it checks the
stores the run will use, prints a readable table and a JSON result, and exits 0 (all required
checks pass) or 1.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import sqlite3
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mental_health_hpo.ops.credentials import export_driver_variables
from mental_health_hpo.ops.locations import ObjectStoreUrl, local_folder, parse_location
from mental_health_hpo.ops.masking import mask_secrets

MIN_PYTHON = (3, 11)
MIN_TORCH = (2, 0)
TIMEOUT_S = 5.0


@dataclass
class Check:
    """One line of the report. ``required`` checks decide the exit code."""

    name: str
    ok: bool
    detail: str
    required: bool = True

    @property
    def status(self) -> str:
        if self.ok:
            return "ok"
        return "FAIL" if self.required else "warn"


# --- configuration --------------------------------------------------------------------------


def load_project_config(project: Path, env: str | None = None) -> dict[str, Any]:
    """``parameters`` and ``mlflow`` as the run sees them (base, then the run env on top)."""
    from kedro.config import MissingConfigException, OmegaConfigLoader

    loader = OmegaConfigLoader(
        conf_source=str(project / "conf"),
        base_env="base",
        default_run_env="local",
        env=env,
        merge_strategy={"parameters": "soft"},
        config_patterns={"mlflow": ["mlflow*", "mlflow*/**"]},
    )
    parameters = loader["parameters"]
    try:
        mlflow = loader["mlflow"]
    except Exception:  # no mlflow.yml: kedro-mlflow's default
        mlflow = {}
    try:  # the study database's password, as the run reads it (CredentialsHooks)
        credentials = loader["credentials"]
    except MissingConfigException:
        credentials = {}
    return {
        "parameters": dict(parameters),
        "mlflow": dict(mlflow),
        "credentials": dict(credentials or {}),
    }


def _relative_to(path: str, project: Path) -> Path:
    candidate = Path(path)
    return candidate if candidate.is_absolute() else project / candidate


# --- store reachability -----------------------------------------------------------------------


def _writable_dir(directory: Path) -> tuple[bool, str]:
    probe = directory
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.is_dir() and os.access(probe, os.W_OK):
        return True, f"{directory} writable"
    return False, f"{directory}: cannot create or write (nearest existing: {probe})"


def _check_sqlite(path: Path) -> tuple[bool, str]:
    if not path.exists():
        ok, detail = _writable_dir(path.parent)
        return ok, f"{path} will be created; {detail}" if ok else detail
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=TIMEOUT_S) as db:
            db.execute("select count(*) from sqlite_master").fetchone()
    except sqlite3.Error as error:
        return False, f"{path}: {error}"
    return True, f"{path} readable"


def _health_request(url: str) -> urllib.request.Request:
    """A GET of ``<url>/health`` with the URL's ``user:password@`` sent as basic auth.

    Why: urllib does not strip credentials from a URL (the host became ``user:password@host``,
    "Name or service not known"), while MLflow's requests-based client sends them as an
    Authorization header, so ``kedro run`` worked with a URL that validate_env rejected.
    """
    parts = urllib.parse.urlsplit(url)
    netloc = parts.hostname or ""
    if ":" in netloc:  # an IPv6 literal
        netloc = f"[{netloc}]"
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    bare = urllib.parse.urlunsplit(
        (parts.scheme, netloc, parts.path.rstrip("/") + "/health", "", "")
    )
    request = urllib.request.Request(bare, method="GET")
    if parts.username is not None or parts.password is not None:
        user = urllib.parse.unquote(parts.username or "")
        password = urllib.parse.unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        request.add_header("Authorization", f"Basic {token}")
    return request


def _check_http(url: str) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(_health_request(url), timeout=TIMEOUT_S) as response:
            return True, f"{url} answered {response.status}"
    except urllib.error.HTTPError as error:
        if error.code in (401, 403):
            return False, (
                f"{url} refused the credentials (HTTP {error.code}): check the user and password "
                f"in mlflow_tracking_uri, or MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD"
            )
        return True, f"{url} answered {error.code}"  # it answered: reachable
    except Exception as error:
        return False, f"{url} unreachable: {error}"


def _check_sqlalchemy(url: str) -> tuple[bool, str]:
    try:
        from sqlalchemy import create_engine, text

        engine = create_engine(url, pool_pre_ping=True)
        with engine.connect() as connection:
            connection.execute(text("select 1"))
        engine.dispose()
    except Exception as error:
        return False, f"{url} unreachable: {type(error).__name__}: {error}"
    return True, f"{url} reachable"


def check_store(url: str, project: Path) -> tuple[bool, str]:
    """Reachable without side effects: sqlite/journal files (or their folders), HTTP, SQL."""
    if url.startswith("sqlite:///"):
        rest = url.removeprefix("sqlite:///")
        path = Path("/" + rest.lstrip("/")) if url.startswith("sqlite:////") else Path(rest)
        return _check_sqlite(_relative_to(str(path), project))
    if url.startswith("journal:///"):
        path = _relative_to(url.removeprefix("journal:///"), project)
        return (True, f"{path} exists") if path.is_file() else _writable_dir(path.parent)
    if url.startswith(("http://", "https://")):
        return _check_http(url)
    if url.startswith("file:") or "://" not in url:
        path = _relative_to(url.removeprefix("file://").removeprefix("file:"), project)
        return _writable_dir(path)
    return _check_sqlalchemy(url)


# --- disk -----------------------------------------------------------------------------------


def _existing_parent(path: Path) -> Path:
    """``path``, or its nearest existing parent: the experiments folder may not exist yet."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_disk(parameters: dict[str, Any], project: Path) -> Check:
    """Free space where experiments go against the retention policy's peak for a study."""
    from mental_health_hpo.checkpointing import RetentionPolicy
    from mental_health_hpo.model.config import PACKAGED_MINILM
    from mental_health_hpo.model.encoder_size import encoder_size

    hpo = parameters.get("hpo", {})
    checkpointing = hpo.get("checkpointing", {}) or {}
    policy = RetentionPolicy.load(
        checkpointing.get("policy", "default"), checkpointing.get("overrides")
    )
    model = hpo.get("base", {}).get("model", {}) or {}
    study = hpo.get("study", {})
    experiments = parse_location(
        str(study.get("experiments_dir", "experiments")), "hpo.study.experiments_dir"
    )
    if isinstance(experiments, ObjectStoreUrl):  # a bucket study: this host holds its cache
        experiments = local_folder(str(study.get("cache_dir", "data/cache")), "hpo.study.cache_dir")
    target = _relative_to(str(experiments), project)
    free = shutil.disk_usage(_existing_parent(target)).free
    size = encoder_size(
        str(model.get("encoder", PACKAGED_MINILM)),
        revision=model.get("revision"),
        cache_dir=model.get("cache_dir"),
    )
    if size.n_params is None:  # never another model's size: say it is unknown, and how to check
        detail = f"{free / 1e9:.1f} GB free at {target}; encoder size {size.source}"
        return Check("disk", False, detail, required=False)
    n_params = size.n_params
    needed = policy.study_peak_bytes(n_params)
    detail = (
        f"{free / 1e9:.1f} GB free at {target}; policy {checkpointing.get('policy', 'default')} "
        f"needs ~{needed / 1e9:.2f} GB ({n_params / 1e6:.1f}M params of {size.encoder}, from "
        f"{size.source}; {policy.keep_best_trials}+1 trials)"
    )
    return Check("disk", free >= needed, detail)


# --- the checks -------------------------------------------------------------------------------


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split("+")[0].split(".")[:2]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def run_checks(
    project: Path, *, cuda: bool = False, hf_token: bool = False, env: str | None = None
) -> list[Check]:
    checks: list[Check] = []
    python = ".".join(map(str, sys.version_info[:3]))
    checks.append(Check("python", sys.version_info[:2] >= MIN_PYTHON, python))
    try:
        import torch

        checks.append(
            Check("torch", _version_tuple(torch.__version__) >= MIN_TORCH, torch.__version__)
        )
        available = torch.cuda.is_available()
        detail = (
            f"{torch.cuda.device_count()} device(s), CUDA {torch.version.cuda}"
            if available
            else "not available"
        )
        checks.append(Check("cuda", available or not cuda, detail, required=cuda))
    except Exception as error:
        checks.append(Check("torch", False, f"cannot import torch: {error}"))

    try:
        config = load_project_config(project, env)
    except Exception as error:
        checks.append(Check("config", False, f"cannot read {project / 'conf'}: {error}"))
        return checks
    parameters = config["parameters"]
    tracking = str((config["mlflow"].get("server") or {}).get("mlflow_tracking_uri") or "mlruns")
    checks.append(Check("mlflow_store", *check_store(tracking, project)))
    storage = str(
        parameters.get("hpo", {}).get("study", {}).get("storage", "sqlite:///experiments/optuna.db")
    )
    # The study database's password from credentials.yml, exported for libpq as a run does, so
    # the check connects the way the workers will (a password kept there alone must pass too).
    export_driver_variables(config["credentials"])
    checks.append(Check("optuna_storage", *check_store(storage, project)))
    try:
        checks.append(check_disk(parameters, project))
    except Exception as error:
        checks.append(Check("disk", False, f"cannot estimate: {type(error).__name__}: {error}"))
    if hf_token:
        checks.append(_check_token())
    return checks


def _check_token() -> Check:
    from mental_health_hpo.ops.hub_auth import HubAuthError, check_hub_token

    try:
        user = check_hub_token(endpoint=os.environ.get("HF_ENDPOINT"))
    except HubAuthError as error:
        return Check("hf_token", False, str(error))
    except Exception as error:
        return Check("hf_token", False, f"hub unreachable: {type(error).__name__}: {error}")
    return Check("hf_token", True, f"logged in as {user or '(unnamed)'}")


def render_table(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = [f"{'check':<{width}}  status  detail", f"{'-' * width}  ------  ------"]
    lines += [f"{c.name:<{width}}  {c.status:<6}  {c.detail}" for c in checks]
    return "\n".join(lines)


def result(checks: list[Check]) -> dict[str, Any]:
    ok = all(c.ok for c in checks if c.required)
    return {"ok": ok, "checks": [{**asdict(c), "status": c.status} for c in checks]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mental_health_hpo.validate_env", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--cuda", action="store_true", help="require a CUDA device")
    parser.add_argument("--hf-token", action="store_true", help="check the Hugging Face token")
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    parser.add_argument("--project", type=Path, default=Path.cwd(), help="project root")
    parser.add_argument("--env", default=None, help="Kedro run environment (default: local)")
    args = parser.parse_args(argv)
    checks = run_checks(
        args.project.resolve(), cuda=args.cuda, hf_token=args.hf_token, env=args.env
    )
    for check in checks:
        check.detail = mask_secrets(check.detail)  # URLs may carry passwords
    payload = result(checks)
    if not args.json:
        print(render_table(checks))
        print("environment OK" if payload["ok"] else "environment NOT OK", flush=True)
    print(json.dumps(payload), flush=True)
    return 0 if payload["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
