"""The encoder's parameter count, read without loading weights: folder, HF cache, unknown."""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import ClassVar

import pytest

import mental_health_hpo
from mental_health_hpo.model.encoder_size import encoder_size, safetensors_parameter_count


def _count_by_loading(folder: Path) -> int:
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(folder))
    return sum(parameter.numel() for parameter in model.parameters())


def test_the_packaged_minilm_is_sized_from_its_own_folder() -> None:
    from mental_health_hpo.model.encoder import packaged_minilm_path

    size = encoder_size("packaged:all-minilm-l6-v2")
    # the file also holds buffers (position_ids: 512 values), which checkpoints store too
    assert size.n_params == pytest.approx(_count_by_loading(packaged_minilm_path()), rel=1e-3)
    assert size.source.startswith("folder ")


def test_a_cached_hub_encoder_is_sized_from_its_safetensors_header(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (tiny_model_dir / "model.safetensors").is_file()
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hf" / "hub" / "models--someone--tiny-bert"
    shutil.copytree(tiny_model_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)

    size = encoder_size("someone/tiny-bert")
    assert size.n_params == pytest.approx(_count_by_loading(tiny_model_dir), rel=1e-2)
    assert size.n_params == safetensors_parameter_count(tiny_model_dir / "model.safetensors")
    assert "safetensors header in the HF cache" in size.source
    # config.json alone (weights not cached) gives the same count, built on the meta device
    (repo / "snapshots" / commit / "model.safetensors").unlink()
    from_config = encoder_size("someone/tiny-bert")
    assert from_config.n_params == _count_by_loading(tiny_model_dir)  # parameters only
    assert "config.json" in from_config.source


def test_an_uncached_id_offline_is_unknown_never_another_models_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    size = encoder_size("org/not-cached", cache_dir=str(tmp_path))
    assert size.n_params is None and not size.known
    assert "HF_HUB_OFFLINE=1" in size.source and "hf download org/not-cached" in size.source


class _HubServingWeights(http.server.BaseHTTPRequestHandler):
    """Serves ``weights`` as ``org/tiny``'s model.safetensors, honouring Range like the hub."""

    weights: ClassVar[bytes] = b""
    ranges: ClassVar[list[str]] = []

    def _head(self, length: int, status: int = 200) -> None:
        self.send_response(status)
        self.send_header("X-Repo-Commit", "0123456789abcdef0123456789abcdef01234567")
        self.send_header("ETag", '"abc"')
        self.send_header("Content-Length", str(length))
        self.end_headers()

    def do_HEAD(self) -> None:
        if self.path.endswith("/org/tiny/resolve/main/model.safetensors"):
            self._head(len(self.weights))
        else:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()

    def do_GET(self) -> None:
        wanted = self.headers.get("range", "")
        type(self).ranges.append(wanted)
        start, end = (int(x) for x in wanted.removeprefix("bytes=").split("-"))
        body = self.weights[start : end + 1]
        self._head(len(body), status=206)
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_online_a_hub_encoder_is_sized_from_the_hubs_header_without_its_weights(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    weights = tiny_model_dir / "model.safetensors"
    _HubServingWeights.weights = weights.read_bytes()
    _HubServingWeights.ranges = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HubServingWeights)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(mental_health_hpo.__file__).parents[1]),
        "HF_ENDPOINT": f"http://127.0.0.1:{server.server_address[1]}",  # read at import
        "HF_HUB_OFFLINE": "0",
        "HF_HOME": str(tmp_path / "empty-cache"),
    }
    code = (
        "from mental_health_hpo.model.encoder_size import encoder_size\n"
        "size = encoder_size('org/tiny')\nprint(size.n_params, '|', size.source)"
    )
    try:
        child = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
        )
    finally:
        server.shutdown()
        server.server_close()
    assert child.returncode == 0, child.stderr[-2000:]
    count, source = child.stdout.strip().splitlines()[-1].split(" | ")
    assert int(count) == safetensors_parameter_count(weights)
    assert source == "the hub's safetensors metadata"
    header_end = 8 + int.from_bytes(_HubServingWeights.weights[:8], "little")
    assert _HubServingWeights.ranges  # it asked the hub ...
    for wanted in _HubServingWeights.ranges:  # ... for the header only, never the weights
        start = int(wanted.removeprefix("bytes=").split("-")[0])
        assert start < header_end
    assert not (tmp_path / "empty-cache" / "hub" / "models--org--tiny").exists()
