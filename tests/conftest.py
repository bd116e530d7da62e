"""Shared, expensive fixtures: built once per test session.

vLLM engines take about a minute to start on 2 cores, so each model gets one engine
for the whole run (DESIGN.md). Engines run in vLLM's default multiprocess mode.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no hub here; fail fast instead of retrying


def pytest_collection_modifyitems(config, items):
    if os.environ.get("STEERHEAL_GPU_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="GPU test: opt in with STEERHEAL_GPU_TESTS=1 on a CUDA machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    from steerheal_online.models import build_tiny_model

    return str(build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0))


@pytest.fixture(scope="session")
def tiny_hf(tiny_dir):
    from steerheal_online.models import load_hf

    return load_hf(tiny_dir)


@pytest.fixture(scope="session")
def smol_dir():
    from steerheal_online.models import resolve_model

    return resolve_model("smollm2-135m-instruct").path


@pytest.fixture(scope="session")
def smol_hf(smol_dir):
    from steerheal_online.models import load_hf

    return load_hf(smol_dir)


def _engine(path, **kw):
    from steerheal_online.engine import EngineSpec, make_llm, shutdown

    llm = make_llm(EngineSpec(path, max_model_len=512, kv_cache_gib=0.25, **kw))
    return llm, shutdown


@pytest.fixture(scope="session")
def tiny_llm(tiny_dir):
    llm, shutdown = _engine(tiny_dir, steer_layers=(0, 1, 2, 3))
    yield llm
    shutdown(llm)


@pytest.fixture(scope="session")
def smol_llm(smol_dir):
    llm, shutdown = _engine(smol_dir, steer_layers=(15,))
    yield llm
    shutdown(llm)


@pytest.fixture(scope="session")
def tiny_config(tiny_dir, tmp_path_factory):
    """A config YAML for the tiny model, writing everything under a temp dir."""
    import yaml

    root = tmp_path_factory.mktemp("tinyrun")
    cfg = {
        "run": {"name": "tiny", "output_dir": str(root / "out")},
        "model": {"name": tiny_dir, "max_model_len": 512},
        "persona": {
            "trait": "cheerful",
            "pos": "You are someone who always sees the bright side of everything.",
            "neg": "You are someone who always sees the dark side of everything.",
        },
        "steering": {"layer_band": [0.45, 0.55], "strength": 4.0, "num_contexts": 16},
        "rollout": {"max_new_tokens": 8, "kv_cache_gib": 0.25},
        "tracking": {"tracking_uri": f"sqlite:///{root / 'mlflow.db'}", "experiment": "tiny-tests"},
    }
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path
