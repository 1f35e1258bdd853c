"""The stage contract (Scope's shape): config metadata, shapes, ranges, runtime params per call."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bridge.chain import validate_params
from bridge.errors import ConfigError
from bridge.stages import all_stages, get_stage
from bridge.stages.base import BasePipelineConfig, UsageType


def frames_from(rgb: np.ndarray) -> list[torch.Tensor]:
    return [torch.from_numpy(rgb)[None]]


def test_every_stage_has_scope_metadata_and_ui_fields():
    for stage in all_stages():
        config = stage.get_config_class()
        assert issubclass(config, BasePipelineConfig)
        assert config.pipeline_id and config.pipeline_name and config.pipeline_description and config.osc_name
        assert all(isinstance(u, UsageType) for u in config.usage)
        for name, field in config.model_fields.items():
            ui = field.json_schema_extra["ui"]
            assert "is_load_param" in ui and "label" in ui, (config.pipeline_id, name)
            assert field.description, (config.pipeline_id, name)


def test_config_forbids_unknown_fields_and_checks_bounds():
    config = get_stage("alpha").get_config_class()
    with pytest.raises(ConfigError, match="thresold"):
        validate_params(config, {"thresold": 0.3})
    with pytest.raises(ConfigError, match="threshold"):
        validate_params(config, {"threshold": 1.5})


def test_runtime_and_load_fields_are_split():
    config = get_stage("person-alpha").get_config_class()
    assert "model" in config.load_fields()
    assert "threshold" in config.runtime_fields() and "model" not in config.runtime_fields()


def test_passthrough_shapes_and_range(carphone_frames):
    stage = get_stage("passthrough")()
    assert stage.prepare().input_size == 1
    out = stage(video=frames_from(carphone_frames[0]))
    video = out["video"]
    assert video.shape == (1, 144, 176, 3) and video.dtype == torch.float32
    assert 0.0 <= float(video.min()) and float(video.max()) <= 1.0
    np.testing.assert_allclose(video[0].numpy() * 255.0, carphone_frames[0], atol=0.5)


def test_alpha_stage_contract_and_runtime_param_takes_effect_on_next_call(carphone_frames):
    stage = get_stage("alpha")()
    rgb = carphone_frames[30]
    low = stage(video=frames_from(rgb), threshold=0.2, temporal=0.0)
    high = stage(video=frames_from(rgb), threshold=0.95, softness=0.0, temporal=0.0)
    for out in (low, high):
        assert out["video"].shape == (1, 144, 176, 3) and out["video"].dtype == torch.float32
        assert out["alpha"].shape == (1, 144, 176, 1) and out["alpha"].dtype == torch.float32
        assert 0.0 <= float(out["alpha"].min()) and float(out["alpha"].max()) <= 1.0
    # the second call's threshold was read from its own kwargs: less of the frame is person
    assert float(high["alpha"].mean()) < float(low["alpha"].mean()) - 0.01


def test_alpha_stage_premultiplied_output(carphone_frames):
    stage = get_stage("alpha")()
    rgb = carphone_frames[10]
    straight = stage(video=frames_from(rgb), temporal=0.0, alpha_mode="straight")
    stage.reset()
    premul = stage(video=frames_from(rgb), temporal=0.0, alpha_mode="premultiplied")
    expected = straight["video"] * straight["alpha"]
    torch.testing.assert_close(premul["video"], expected, atol=1e-5, rtol=0)


def test_alpha_source_input_segments_the_daemon_input(carphone_frames):
    stage = get_stage("alpha")()
    person = frames_from(carphone_frames[0])
    black = [torch.zeros_like(person[0])]
    from_output = stage(video=black, source_video=person, alpha_source="output", temporal=0.0)
    from_input = stage(video=black, source_video=person, alpha_source="input", temporal=0.0)
    assert float(from_output["alpha"].mean()) < 0.05  # nobody in a black frame
    assert float(from_input["alpha"].mean()) > 0.3  # the person in the source frame


def test_stage_rejects_bad_video():
    stage = get_stage("passthrough")()
    with pytest.raises(ValueError, match="video"):
        stage()
    with pytest.raises(ValueError, match=r"\(1,H,W,C\)"):
        stage(video=[torch.zeros(4, 4, 3)])
