# syntax=docker/dockerfile:1.7
# mental_health_hpo: the Kedro project in a container (see docs/docker.md). BuildKit (the default
# builder of Docker 23+) is needed for the pip cache mounts.
#
# Targets: `runtime` (default: what `kedro run` needs, the project installed as a package) and
# `dev` (the dev extras, the project editable from /app/src; the devcontainer uses it).
#
# CPU (default; torch from the PyTorch CPU index, no multi-GB CUDA download):
#   docker build -t mental-health-hpo:cpu .
# GPU (recommended): same Python base, torch from PyPI, where torch==2.13.0 is the CUDA build and
# brings the CUDA runtime, cuDNN and NCCL as nvidia-* wheels. The host needs only the NVIDIA
# driver and the NVIDIA Container Toolkit (docker run --gpus all ...):
#   docker build -t mental-health-hpo:gpu --build-arg TORCH_INDEX_URL= .
# GPU on an NVIDIA CUDA base image (only if you want its system CUDA libraries/tools as well):
#   docker build -t mental-health-hpo:gpu-cuda --build-arg TORCH_INDEX_URL= \
#     --build-arg BASE_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 .
#   Such a base has no Python 3.11 (Ubuntu 24.04 ships 3.12); the first RUN below then installs
#   python3.11 + venv from the deadsnakes PPA (Ubuntu bases only).

ARG BASE_IMAGE=python:3.11-slim-bookworm

# ---- base: Python 3.11, the non-root user "app", the environment every stage shares ----------
FROM ${BASE_IMAGE} AS base

# Match your host user's ids so bind-mounted data/ and experiments/ stay writable by both.
ARG APP_UID=1000
ARG APP_GID=1000

# No usage data leaves the container. HF_HOME is meant to be a mounted cache folder
# (-v ~/.cache/huggingface:/cache/huggingface); HF_HUB_OFFLINE is deliberately not set.
# (DL3064 only sees "TOKEN" in TOKENIZERS_PARALLELISM: nothing secret here.)
# hadolint ignore=DL3064
ENV KEDRO_DISABLE_TELEMETRY=1 \
    DO_NOT_TRACK=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    HF_HOME=/cache/huggingface \
    TOKENIZERS_PARALLELISM=false \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Python 3.11 (already there on python:3.11-*), the non-root user "app", and the folders it owns.
# Ubuntu 24.04 images (nvidia/cuda:*-ubuntu24.04) have a user "ubuntu" with uid 1000: removed.
# An existing group with APP_GID (e.g. macOS's gid 20) is reused; ownership is numeric below.
# DL3008 (apt versions unpinned): the deadsnakes PPA keeps only its latest build of a package,
# so any pin would break the build at its next upload.
# hadolint ignore=DL3008
RUN if ! command -v python3.11 >/dev/null 2>&1; then \
        apt-get update \
        && apt-get install -y --no-install-recommends software-properties-common gpg-agent \
        && add-apt-repository -y ppa:deadsnakes/ppa \
        && apt-get install -y --no-install-recommends python3.11 python3.11-venv \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && { userdel -r ubuntu 2>/dev/null || true; } \
    && { getent group "${APP_GID}" >/dev/null || groupadd --gid "${APP_GID}" app; } \
    && useradd --uid "${APP_UID}" --gid "${APP_GID}" --create-home --shell /bin/bash app \
    && install -d -o "${APP_UID}" -g "${APP_GID}" /app /app/src /opt/venv /cache/huggingface

# ---- requirements: the runtime dependency list, and nothing else, out of pyproject.toml ------
# [project].dependencies plus the extras the deployed services need (postgres: the driver of
# every postgresql+psycopg:// in deploy/; s3: s3fs and boto3 for the s3:// of
# deploy/compose.object-store.yml), printed by scripts/runtime_requirements.py, the same
# script tests/distributed/test_deploy_commands.py builds its runtime-only virtualenv from.
# A stage of its own so that the layers below are reused while only tool settings (ruff, mypy,
# import-linter...) change in pyproject.toml: COPY --from compares the extracted list's content.
FROM base AS requirements
COPY pyproject.toml /tmp/pyproject.toml
COPY scripts/runtime_requirements.py /tmp/runtime_requirements.py
RUN python3.11 /tmp/runtime_requirements.py /tmp/pyproject.toml > /tmp/requirements.txt

# ---- deps: every runtime dependency at its constraints.txt version; no project code --------
# Rebuilt only when constraints.txt or the dependency list change, never for a code change.
# The pip cache is a BuildKit cache mount: a rebuild downloads only what changed, and no wheel
# cache ends up in a layer.
FROM base AS deps
ENV PIP_CACHE_DIR=/tmp/pip-cache
# Extra index for torch only; empty = PyPI's default build (CUDA on Linux x86_64).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG APP_UID=1000
ARG APP_GID=1000
USER ${APP_UID}:${APP_GID}
WORKDIR /app
COPY --chown=${APP_UID}:${APP_GID} constraints.txt ./
COPY --from=requirements --chown=${APP_UID}:${APP_GID} /tmp/requirements.txt ./requirements.txt
# Versions come from constraints.txt (one file pins every machine), hence no "==" here (DL3013).
# torch first, alone: the CPU index's 2.13.0+cpu wins over PyPI's 2.13.0 (pinned by the file).
# DL3042 (no --no-cache-dir): the pip cache is the BuildKit cache mount, never in a layer.
# hadolint ignore=DL3013,DL3042
RUN --mount=type=cache,target=/tmp/pip-cache,uid=${APP_UID},gid=${APP_GID} \
    python3.11 -m venv /opt/venv \
    && python -m pip install -c constraints.txt --upgrade pip \
    && python -m pip install -c constraints.txt \
        ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} torch \
    && python -m pip install -c constraints.txt -r requirements.txt

# ---- build: the project itself, as a regular (non-editable) package in the venv -------------
# A built wheel holds every subpackage and the YAML/JSON files beside the code (namespace
# discovery in pyproject.toml), so the runtime image needs no source tree.
FROM deps AS build
ARG APP_UID=1000
ARG APP_GID=1000
COPY --chown=${APP_UID}:${APP_GID} pyproject.toml README.md ./
COPY --chown=${APP_UID}:${APP_GID} src ./src
# DL3042: the pip cache is the BuildKit cache mount (see deps), never in a layer.
# hadolint ignore=DL3042
RUN --mount=type=cache,target=/tmp/pip-cache,uid=${APP_UID},gid=${APP_GID} \
    python -m pip install --no-deps -c constraints.txt . \
    && python -m pip check

# ---- dev: the dev extras, the project editable from /app/src (devcontainer, compose app) ----
FROM deps AS dev
ARG APP_UID=1000
ARG APP_GID=1000
COPY --chown=${APP_UID}:${APP_GID} pyproject.toml README.md ./
COPY --chown=${APP_UID}:${APP_GID} src ./src
# DL3042: the pip cache is the BuildKit cache mount (see deps), never in a layer.
# hadolint ignore=DL3042
RUN --mount=type=cache,target=/tmp/pip-cache,uid=${APP_UID},gid=${APP_GID} \
    python -m pip install -c constraints.txt -e '.[dev]' \
    && rm -rf build src/*.egg-info
COPY --chown=${APP_UID}:${APP_GID} conf ./conf
COPY --chown=${APP_UID}:${APP_GID} data ./data
COPY --chown=${APP_UID}:${APP_GID} experiments ./experiments
CMD ["sleep", "infinity"]

# ---- runtime (default): the venv, Kedro's configuration and the empty data skeleton ---------
FROM base AS runtime
ARG APP_UID=1000
ARG APP_GID=1000
COPY --from=build --chown=${APP_UID}:${APP_GID} /opt/venv /opt/venv
USER ${APP_UID}:${APP_GID}
WORKDIR /app
# pyproject.toml is Kedro's project marker ([tool.kedro]); /app/src stays an empty folder, which
# Kedro requires and puts first on sys.path: mount the working tree over /app and `kedro run`
# runs the mounted code rather than the installed copy.
# .dockerignore keeps conf/local/* (credentials) and all runtime state out of the image.
COPY --chown=${APP_UID}:${APP_GID} pyproject.toml ./
COPY --chown=${APP_UID}:${APP_GID} conf ./conf
COPY --chown=${APP_UID}:${APP_GID} data ./data
COPY --chown=${APP_UID}:${APP_GID} experiments ./experiments

# 5000: MLflow UI (kedro mlflow ui --host 0.0.0.0); 4141: kedro viz; 8080: optuna-dashboard
EXPOSE 5000 4141 8080

# Healthy when the environment imports (a batch job has no port); a service started from this
# image sets HEALTHCHECK_URL (deploy/compose.yml does) and is healthy while that URL answers 200.
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request as r; url = os.environ.get('HEALTHCHECK_URL'); import mental_health_hpo; sys.exit(0 if not url or r.urlopen(url, timeout=5).status == 200 else 1)"]

CMD ["kedro", "run", "--pipelines", "hpo", "--only-missing-outputs"]
