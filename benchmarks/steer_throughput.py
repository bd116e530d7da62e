"""Steered generation throughput: research-style HF batch 1 vs HF batched vs vLLM, one process.

    .venv/bin/python benchmarks/steer_throughput.py [--prompts 16] [--new-tokens 64] [--reps 3]

Prints JSON: tokens/s of (a) steered HF generate at batch 1 (how the research code
generated), (b) steered HF generate batched, (c) steered vLLM (the product's path:
worker-subclass hooks + extension), (d) unsteered vLLM (a stock engine, no hooks), and
(c0) the product's engine with the vector cleared (the hooks' own cost). Every
approach generates exactly --new-tokens per sequence (EOS ignored), greedy, on the
same prompts and the same vector. vLLM engines run one at a time (an idle engine's
worker polls and steals a core on a small machine); each rate is the median of --reps. Targets on 2 CPU cores:
(c)/(a) >= 10 and (c)/(d) >= 0.97.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def _rate(fn) -> tuple[float, int]:
    t0 = time.perf_counter()
    n_tokens = fn()
    return n_tokens / (time.perf_counter() - t0), n_tokens


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="default")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--batch1-prompts", type=int, default=4, help="(a) is slow; its rate does not depend on the count")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()

    from steerheal_online.config import load_config
    from steerheal_online.data import load_prompts
    from steerheal_online.engine import EngineSpec, make_llm, sampling, shutdown, vllm_generate
    from steerheal_online.generation import chat_ids, hf_generate
    from steerheal_online.models import load_hf, resolve_model
    from steerheal_online.steer_ops import band_only, extract_for, raw_strength
    from steerheal_online.steering import steer
    from steerheal_online.steering_vllm import clear_steering, set_steering

    cfg = load_config(args.config, ["steering.num_contexts=32"])
    model, tok = load_hf(cfg.model.name)
    vec = band_only(cfg, extract_for(cfg, model, tok))
    s = raw_strength(cfg, vec)
    ids = [chat_ids(tok, p) for p in load_prompts()[: args.prompts]]
    T = args.new_tokens
    out: dict = {"model": cfg.model.name, "layers": vec.layers, "strength": s, "prompts": len(ids), "new_tokens": T}

    with steer(model, vec, s):
        a_runs = [_rate(lambda: sum(len(c.token_ids) for c in hf_generate(model, tok, ids[: args.batch1_prompts], T, 1, True)))[0]
                  for _ in range(max(1, args.reps // 2))]  # batch 1 is slow; fewer reps
        b_runs = [_rate(lambda: sum(len(c.token_ids) for c in hf_generate(model, tok, ids, T, len(ids), True)))[0]
                  for _ in range(args.reps)]
    a, b = statistics.median(a_runs), statistics.median(b_runs)
    del model

    path = resolve_model(cfg.model.name).path
    common = dict(max_model_len=cfg.model.max_model_len, kv_cache_gib=cfg.rollout.kv_cache_gib)
    params = sampling(T, ignore_eos=True)
    gen = lambda llm: sum(len(g[0].token_ids) for g in vllm_generate(llm, ids, params))  # noqa: E731

    # One engine alive at a time: an idle vLLM worker polls its queue and would steal a core.
    plain_llm = make_llm(EngineSpec(path, **common))
    gen(plain_llm)  # warm-up: the first batch pays one-off costs
    d_runs = [_rate(lambda: gen(plain_llm))[0] for _ in range(args.reps)]
    shutdown(plain_llm)
    steered_llm = make_llm(EngineSpec(path, steer_layers=tuple(vec.layers), **common))
    gen(steered_llm)
    c_runs, c0_runs = [], []
    for _ in range(args.reps):  # alternate vector on / off so drift hits both alike
        set_steering(steered_llm, vec.vectors, s)
        c_runs.append(_rate(lambda: gen(steered_llm))[0])
        clear_steering(steered_llm)
        c0_runs.append(_rate(lambda: gen(steered_llm))[0])
    shutdown(steered_llm)
    c, d, c0 = statistics.median(c_runs), statistics.median(d_runs), statistics.median(c0_runs)
    out["tokens_per_s"] = {"a_hf_batch1_steered": a, "b_hf_batched_steered": b, "c_vllm_steered": c,
                           "d_vllm_unsteered": d, "c0_vllm_hooks_zero_vector": c0}
    out["runs"] = {"a": a_runs, "b": b_runs, "c": c_runs, "d": d_runs, "c0": c0_runs}
    out["ratios"] = {"c_over_a": c / a, "c_over_d": c / d, "b_over_a": b / a, "c0_over_d": c0 / d}
    out["targets"] = {"c_over_a>=10": c / a >= 10, "c_over_d>=0.97": c / d >= 0.97}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
