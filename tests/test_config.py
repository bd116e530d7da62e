"""Config: every shipped YAML loads; overrides keep types; bad input names the field."""


import pytest

from steerheal_online.config import Config, config_to_yaml, describe_fields, load_config, shipped_configs
from steerheal_online.errors import ConfigError


@pytest.mark.parametrize("name", sorted(shipped_configs()))
def test_every_shipped_config_loads_and_round_trips(name, tmp_path):
    cfg = load_config(name)
    assert isinstance(cfg, Config)
    again = tmp_path / "again.yaml"
    again.write_text(config_to_yaml(cfg))
    assert load_config(again) == cfg


def test_default_is_the_embedded_cheerful_run():
    cfg = load_config("default")
    assert cfg.model.name == "smollm2-135m-instruct"
    assert cfg.persona.trait == "cheerful"
    assert cfg.rollout.gpus_per_actor == 0


def test_overrides_are_typed():
    cfg = load_config("default", ["learner.kl_weight=0.25", "steering.layer_band=[0.4, 0.6]", "tracking.enabled=false"])
    assert cfg.learner.kl_weight == 0.25
    assert cfg.steering.layer_band == (0.4, 0.6)
    assert cfg.tracking.enabled is False


def test_every_field_is_documented():
    fields = describe_fields()
    assert len(fields) > 40
    assert [f for f, doc in fields if not doc] == []


BAD = [
    # (override or yaml text, field the message must name, words the message must contain)
    ("steering.strength=-1", "steering.strength", "greater than or equal to 0"),
    ("steering.layer_band=[0.6, 0.4]", "steering.layer_band", "0 <= lo <= hi <= 1"),
    ("steering.layer_band=[0.2, 1.5]", "steering.layer_band", "0 <= lo <= hi <= 1"),
    ("rollout.group_size=1", "rollout.group_size", "greater than or equal to 2"),
    ("rollout.group_size=four", "rollout.group_size", "valid integer"),
    ("learner.kl_agg=median", "learner.kl_agg", "'mean', 'rmse', 'p95' or 'max'"),
    ("learner.kl_estimatr=k3", "learner.kl_estimatr", "unknown key"),
    ("bogus.x=1", "bogus", "unknown key"),
    ("rollout.prompts_file=/no/such/prompts.txt", "rollout.prompts_file", "not found"),
    ("steering.contexts_file=/no/such/ctx.txt", "steering.contexts_file", "not found"),
    ("model.name=/no/such/model_dir", "model.name", "does not exist"),
    ("rollout.top_p=0", "rollout.top_p", "greater than 0"),
    ("persona.pos=short", "persona.pos", "at least 10 characters"),
    ("loop.strength_min=9", "loop", "strength_min"),
    ("learner.lr=-0.001", "learner.lr", "greater than 0"),
    ("learner.use_gpu=maybe", "learner.use_gpu", "valid boolean"),
]


@pytest.mark.parametrize("override,field,words", BAD, ids=[b[0] for b in BAD])
def test_bad_values_name_the_field(override, field, words):
    with pytest.raises(ConfigError) as exc:
        load_config("default", [override])
    msg = str(exc.value)
    assert f"  {field}" in msg, msg
    assert words in msg, msg


def test_identical_personas_rejected(tmp_path):
    with pytest.raises(ConfigError, match="persona.*identical"):
        load_config("default", ["persona.neg=" + load_config("default").persona.pos])


def test_missing_persona_section_rejected(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("model:\n  name: smollm2-135m-instruct\n")
    with pytest.raises(ConfigError, match=r"persona: Field required"):
        load_config(p)


def test_missing_config_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="config file not found: 'nope.yaml'"):
        load_config("nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("run: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping of sections"):
        load_config(lst)


def test_malformed_override():
    with pytest.raises(ConfigError, match="expected dotted.key=value"):
        load_config("default", ["learner.kl_weight"])


def test_import_is_light():
    """Importing the config must not drag in torch/vllm/ray (fast CLI, no GPU needed)."""
    import subprocess
    import sys

    code = "import sys, steerheal_online.config, steerheal_online.cli; print(sorted(m for m in ('torch','vllm','ray','deepspeed','trl') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
