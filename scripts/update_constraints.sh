#!/usr/bin/env bash
# Regenerate constraints.txt (exact versions of every package the project installs, so every machine runs the same code).
#
#   scripts/update_constraints.sh [OUTPUT]      # OUTPUT defaults to constraints.txt at the repo root
#
# Installs the project with its dev extras into a throw-away venv with NO constraints (so every
# dependency resolves to the newest release its pyproject.toml range allows), then writes
# `pip freeze --all --exclude-editable` (--all: pip and setuptools are pinned too) with a header.
# Local version labels are dropped (torch==2.13.0+cpu -> torch==2.13.0) so the same file installs
# on CPU and CUDA machines; the CUDA-only packages torch pulls there (nvidia-*, triton) never
# appear in a CPU freeze, and constraints only restrict versions, they add no package, so their
# absence is harmless.
# Use Python 3.11 (PYTHON=..., default python3): the pins are made for the Docker image's Python.
set -euo pipefail
cd "$(dirname "$0")/.."
export KEDRO_DISABLE_TELEMETRY=1 DO_NOT_TRACK=1 MLFLOW_DISABLE_TELEMETRY=true
PYTHON=${PYTHON:-python3}
OUT=${1:-constraints.txt}
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
  || { echo "update_constraints: needs Python 3.11 (set PYTHON=...)" >&2; exit 1; }

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$PYTHON" -m venv "$TMP/venv"
"$TMP/venv/bin/python" -m pip install --quiet --upgrade pip
"$TMP/venv/bin/python" -m pip install --quiet -e '.[dev]'

{
  echo "# Exact versions of every package mental_health_hpo installs (runtime + [dev])."
  echo "# Use: pip install -c constraints.txt -e '.[dev]'   (or '.' for the runtime only)."
  echo "# Made by scripts/update_constraints.sh on $(date -u +%Y-%m-%d): a fresh venv with"
  echo "# $("$PYTHON" --version) and pip $("$TMP/venv/bin/python" -m pip --version | cut -d' ' -f2),"
  echo "# pip install -e '.[dev]' without constraints, then pip freeze --all --exclude-editable, local"
  echo "# version labels dropped (torch==2.13.0, not +cpu) so the file serves CPU and CUDA machines."
  echo "# nvidia-* and triton (pulled by the CUDA torch build only) are left unpinned on purpose."
  echo "# Regenerate: scripts/update_constraints.sh   (then run the tests and commit the diff)."
  "$TMP/venv/bin/python" -m pip freeze --all --exclude-editable \
    | sed -E 's/^([A-Za-z0-9_.-]+==[^+ ]+)\+[A-Za-z0-9_.]+$/\1/' \
    | grep -viE '^(nvidia-|triton==)'
} > "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "update_constraints: wrote $OUT ($(grep -vc '^#' "$OUT") pins)"
