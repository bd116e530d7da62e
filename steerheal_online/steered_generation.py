"""Steered and unsteered completions from one vLLM engine, for `steer generate` and `run`."""

from __future__ import annotations

from steerheal_online.config import Config
from steerheal_online.data import load_prompts
from steerheal_online.engine import EngineSpec, make_llm, sampling, shutdown, vllm_generate
from steerheal_online.generation import Completion, chat_ids
from steerheal_online.models import resolve_model
from steerheal_online.steering import SteeringVector
from steerheal_online.steering_vllm import clear_steering, set_steering


def engine_for(cfg: Config, steer_layers: list[int]):
    """A vLLM engine for the config's model with steering hooks on `steer_layers`."""
    path = resolve_model(cfg.model.name).path
    return make_llm(EngineSpec(
        path, dtype=cfg.model.dtype, max_model_len=cfg.model.max_model_len, seed=cfg.run.seed,
        kv_cache_gib=cfg.rollout.kv_cache_gib, gpu_memory_utilization=cfg.rollout.gpu_memory_utilization,
        steer_layers=tuple(steer_layers),
    ))


def generate_pair(llm, prompt_ids: list[list[int]], vec: SteeringVector, strength: float, params) -> tuple[list[Completion], list[Completion]]:
    """(unsteered, steered) first completions per prompt; the engine is left unsteered."""
    clear_steering(llm)
    plain = [g[0] for g in vllm_generate(llm, prompt_ids, params)]
    set_steering(llm, vec.vectors, strength)
    try:
        steered = [g[0] for g in vllm_generate(llm, prompt_ids, params)]
    finally:
        clear_steering(llm)
    return plain, steered


def steered_vs_unsteered(cfg: Config, tok, vec: SteeringVector, strength: float, num_prompts: int, max_new_tokens: int) -> list[dict]:
    prompts = load_prompts(cfg.rollout.prompts_file)[:num_prompts]
    ids = [chat_ids(tok, p) for p in prompts]
    llm = engine_for(cfg, vec.layers)
    try:
        plain, steered = generate_pair(llm, ids, vec, strength, sampling(max_new_tokens))
    finally:
        shutdown(llm)
    return [{"prompt": p, "unsteered": a.text.strip(), "steered": b.text.strip()} for p, a, b in zip(prompts, plain, steered)]
