"""Model loading: tiny random Llama and the embedded SmolLM2, in transformers and in real vLLM."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from steerheal_online.engine import sampling, vllm_generate
from steerheal_online.errors import ModelLoadError
from steerheal_online.generation import chat_ids, hf_generate
from steerheal_online.models import build_tiny_model, embedded_cached, resolve_model

PROMPTS = ["Hello there, how are you?", "Tell me about rain.", "What is two plus two?", "Name a colour."]


def test_tiny_model_shape(tiny_dir, tiny_hf):
    cfg = json.loads((Path(tiny_dir) / "config.json").read_text())
    assert cfg["head_dim"] == 32 and cfg["num_hidden_layers"] == 4  # vLLM CPU attention rejects head_dim 16
    model, tok = tiny_hf
    ids = chat_ids(tok, "Hi", system="Be brief.")
    text = tok.decode(ids)
    assert text.startswith("<|im_start|>system\nBe brief.<|im_end|>") and text.endswith("<|im_start|>assistant\n")
    assert tok.eos_token == "<|im_end|>"


def test_tiny_model_is_deterministic_per_seed(tmp_path, tiny_dir):
    from safetensors.torch import load_file

    again = build_tiny_model(tmp_path / "again", seed=0)
    a, b = load_file(Path(tiny_dir) / "model.safetensors"), load_file(again / "model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


def test_tiny_model_vllm_matches_hf_greedy(tiny_hf, tiny_llm):
    model, tok = tiny_hf
    ids = [chat_ids(tok, p) for p in PROMPTS]
    hf = hf_generate(model, tok, ids, max_new_tokens=12)
    vl = [g[0] for g in vllm_generate(tiny_llm, ids, sampling(12))]
    assert [c.token_ids for c in vl] == [c.token_ids for c in hf]
    assert all(len(c.token_ids) == 12 or c.finish_reason == "stop" for c in vl)


def _looks_coherent(text: str) -> None:
    words = re.findall(r"[A-Za-z']+", text)
    assert len(words) >= 3, text
    letters = sum(ch.isalpha() or ch.isspace() for ch in text)
    assert letters / max(len(text), 1) > 0.85, text  # prose, not symbols
    assert len(set(w.lower() for w in words)) / len(words) > 0.5, text  # not a loop


QUESTION = "What is the capital of France? Answer in one short sentence."


def test_embedded_smollm2_chat_in_transformers(smol_hf):
    model, tok = smol_hf
    out = hf_generate(model, tok, [chat_ids(tok, QUESTION)], max_new_tokens=60)[0]
    assert out.finish_reason == "stop" and out.token_ids[-1] == tok.eos_token_id  # it finished its answer
    _looks_coherent(out.text)
    assert "paris" in out.text.lower()  # knows the answer, not just grammatical noise


def test_embedded_smollm2_chat_in_vllm(smol_hf, smol_llm):
    model, tok = smol_hf
    ids = chat_ids(tok, QUESTION)
    out = vllm_generate(smol_llm, [ids], sampling(60))[0][0]
    assert out.finish_reason == "stop" and out.token_ids[-1] == tok.eos_token_id
    _looks_coherent(out.text)
    assert "paris" in out.text.lower()
    hf = hf_generate(model, tok, [ids], max_new_tokens=60)[0]
    assert out.token_ids == hf.token_ids  # same weights, same template, same greedy path


def test_embedded_model_is_cached_after_use(smol_dir):
    cached, where = embedded_cached()
    assert cached and where == smol_dir


def test_resolution_errors_name_the_problem(tmp_path):
    with pytest.raises(ModelLoadError, match="no config.json"):
        resolve_model(str(tmp_path))
    with pytest.raises(ModelLoadError, match="GGUF file not found"):
        resolve_model(str(tmp_path / "missing.gguf"))
    with pytest.raises(ModelLoadError, match="not a model directory"):
        resolve_model(str(tmp_path / "nope"))
    assert resolve_model("org/some-model").kind == "hub"  # the hub path exists for users


def test_hub_load_without_network_is_a_clear_error(monkeypatch):
    from steerheal_online.models import load_hf

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="could not load 'steerheal-test/not-a-model' from the hub"):
        load_hf("steerheal-test/not-a-model")


def test_gguf_path_converts_like_the_embedded_alias(tmp_path, monkeypatch):
    from steerheal_online.models import embedded_gguf

    monkeypatch.setenv("STEERHEAL_CACHE", str(tmp_path / "cache"))
    r = resolve_model(str(embedded_gguf()))
    assert r.kind == "gguf" and (Path(r.path) / "model.safetensors").is_file()
    assert str(tmp_path / "cache") in r.path
