# mental_health_hpo: the Kedro project in a container (see docs/docker.md).
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
FROM ${BASE_IMAGE}

# Extra index for torch only; empty = PyPI's default build (CUDA on Linux x86_64).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
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
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Python 3.11 (already there on python:3.11-*), the non-root user "app", and the folders it owns.
# Ubuntu 24.04 images (nvidia/cuda:*-ubuntu24.04) have a user "ubuntu" with uid 1000: removed.
# An existing group with APP_GID (e.g. macOS's gid 20) is reused; ownership is numeric below.
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
    && install -d -o "${APP_UID}" -g "${APP_GID}" /app /opt/venv /cache/huggingface

# Everything from here on runs as "app", so the venv belongs to it (the devcontainer's
# postCreateCommand can pip install into it without root). Numeric, for runAsNonRoot checks.
USER ${APP_UID}:${APP_GID}
WORKDIR /app

# Versions come from constraints.txt (FR-016), hence no "==" on the command lines (DL3013).
COPY --chown=${APP_UID}:${APP_GID} constraints.txt ./
# hadolint ignore=DL3013
RUN python3.11 -m venv /opt/venv \
    && python -m pip install -c constraints.txt --upgrade pip

# torch alone first: the largest download gets its own layer, reused while only the code changes.
# Version 2.13.0 is pinned by constraints.txt; the CPU index's 2.13.0+cpu wins over PyPI's 2.13.0.
# hadolint ignore=DL3013
RUN python -m pip install -c constraints.txt \
        ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} torch

# The project itself, EDITABLE: /app/src is the code that runs, both as built and when the working
# tree is mounted over /app (docker run -v "$PWD:/app", compose, devcontainer), so the image never
# runs stale baked-in code behind mounted sources, and subpackages the wheel build would drop
# (folders without __init__.py, namespaces=false) still import. No torch index here: torch is
# installed and pinned, everything else comes from PyPI. build/ and src/*.egg-info are leftovers
# of the build (the metadata lives in the venv).
COPY --chown=${APP_UID}:${APP_GID} pyproject.toml README.md ./
COPY --chown=${APP_UID}:${APP_GID} src ./src
RUN python -m pip install -c constraints.txt -e . \
    && rm -rf build src/*.egg-info

# Kedro's configuration and the (empty) data/experiments skeleton; the real contents are mounted.
# .dockerignore keeps conf/local/* (credentials) and all runtime state out of the image.
COPY --chown=${APP_UID}:${APP_GID} conf ./conf
COPY --chown=${APP_UID}:${APP_GID} data ./data
COPY --chown=${APP_UID}:${APP_GID} experiments ./experiments

# 5000: MLflow UI (kedro mlflow ui --host 0.0.0.0); 4141: kedro viz (kedro viz run --host 0.0.0.0)
EXPOSE 5000 4141

CMD ["kedro", "run", "--pipeline", "hpo"]
