"""The shipped YAML configs load strictly, and the schedule scale applies to every phase."""


import pytest

from jooci.configio import ConfigError
from jooci.train.config import CONFIGS, load_config, preset_path


@pytest.mark.parametrize("name", ["tiny", "small", "base"])
def test_shipped_configs_load(name):
    assert preset_path(name) == CONFIGS / f"{name}.yaml"  # package data, beside the code
    cfg = load_config(preset_path(name))
    assert cfg.preset == name
    assert cfg.model.dino == cfg.teacher.head


def test_base_follows_the_paper_phases_and_scales():
    cfg = load_config(CONFIGS / "base.yaml")
    assert (cfg.schedule.of("phase1").steps, cfg.schedule.of("phase2").steps) == (50000, 100000)
    tenth = load_config(CONFIGS / "base.yaml", ["schedule.scale=0.1"])
    assert (tenth.schedule.of("phase1").steps, tenth.schedule.of("phase2").warmup_steps) == (5000, 800)
    assert tenth.schedule.of("phase2").lr == cfg.schedule.of("phase2").lr


def test_a_phase_can_have_its_own_batch_but_the_budget_stays_equal():
    from jooci.train.config import load_config

    cfg = load_config(CONFIGS / "small.yaml", ["schedule.teacher.batch_seconds=32", "schedule.scale=2"])
    assert cfg.schedule.batch_seconds("teacher", cfg.data) == 32.0
    assert cfg.schedule.of("teacher").batch_seconds == 32.0  # scaling keeps it
    assert cfg.schedule.batch_seconds("phase1", cfg.data) == cfg.data.batch_seconds == 16.0
    with pytest.raises(ConfigError, match="batch_seconds must be positive"):
        load_config(CONFIGS / "small.yaml", ["schedule.teacher.batch_seconds=0"])
    with pytest.raises(ConfigError, match="equal budget"):
        load_config(CONFIGS / "small.yaml", ["schedule.phase2.batch_seconds=32"])
    load_config(CONFIGS / "small.yaml", ["schedule.phase2.batch_seconds=32", "schedule.content.batch_seconds=32"])
