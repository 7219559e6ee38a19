"""The best model as an MLflow pyfunc model: logged, loaded back from artifacts alone, predicts."""

from __future__ import annotations

import logging
import shutil
import warnings
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from safetensors.torch import save_file

from mental_health_hpo.constants import CRITERIA
from mental_health_hpo.evaluation.mlflow_model import OUTPUT_COLUMNS, log_model, pairs_frame
from mental_health_hpo.model import ModelConfig, build_model
from mental_health_hpo.training.inference import predict

POSTS = pd.DataFrame(
    {
        "post_id": ["a", "b"],
        "text": [
            "I can't sleep at night and I feel tired all day long.",
            "Nothing is fun anymore, I stopped playing guitar.",
        ],
    }
)


def test_pairs_frame_expands_posts_to_the_nine_criteria() -> None:
    pairs = pairs_frame(POSTS)
    assert len(pairs) == 2 * len(CRITERIA)
    assert list(pairs["criterion"][: len(CRITERIA)]) == list(CRITERIA)
    with pytest.raises(ValueError, match="text"):
        pairs_frame(POSTS[["post_id"]])


#: What MLflow prints when a pyfunc model is logged as a pickled object, or without an example.
AVOIDABLE_WARNINGS = ("CloudPickle", "input example was not provided", "input_example")


@pytest.mark.slow
def test_logged_model_loads_back_and_predicts(
    tiny_model_dir: Path,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    encoder = tmp_path / "encoder"  # removed before loading: the model must not need it
    shutil.copytree(tiny_model_dir, encoder)
    config = ModelConfig(encoder=str(encoder), input_format="multi_label", max_length=64, stride=16)
    model = build_model(config)
    weights = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    expected = predict(config, weights, pairs_frame(POSTS), model=model, threshold=0.25)

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        # An experiment of this store: another test may have left its own one active.
        mlflow.set_experiment("logged-model")
        with (
            mlflow.start_run(),
            caplog.at_level(logging.WARNING),
            warnings.catch_warnings(record=True) as caught,
        ):
            warnings.simplefilter("always")
            info = log_model(model, weights, threshold=0.25)
        shutil.rmtree(encoder)
        loaded = mlflow.pyfunc.load_model(info.model_uri)
    finally:
        mlflow.set_tracking_uri(previous)
    printed = capfd.readouterr()
    said = [printed.out, printed.err, caplog.text, *(str(w.message) for w in caught)]
    for text in said:
        assert not [words for words in AVOIDABLE_WARNINGS if words in text], text
    assert loaded.unwrap_python_model().threshold == 0.25  # the model_config reached the model
    assert loaded.metadata.saved_input_example_info is not None
    out = loaded.predict(POSTS)
    assert tuple(out.columns) == OUTPUT_COLUMNS
    assert len(out) == 2 * len(CRITERIA)
    merged = expected.set_index(["post_id", "criterion"])
    for row in out.itertuples(index=False):
        gold = merged.loc[(row.post_id, row.criterion)]
        assert row.prob == pytest.approx(float(gold["prob"]), abs=1e-6)
        assert row.label == int(gold["pred_label"])
        assert (row.evidence_start, row.evidence_end) == (gold["pred_start"], gold["pred_end"])
        text = POSTS.set_index("post_id").loc[row.post_id, "text"]
        expected_text = (
            text[row.evidence_start : row.evidence_end] if row.evidence_start >= 0 else ""
        )
        assert row.evidence_text == expected_text
