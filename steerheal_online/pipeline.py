"""`steerheal run`: the most complete real pipeline the product has so far.

Today: resolve the model (converting the embedded GGUF once), start a real vLLM
engine, generate chat completions for held-out neutral prompts with the rollout
sampling settings, write them to `<output_dir>/generations.jsonl`, log to MLflow, and
print a table plus a summary. The online loop replaces the middle of this in time.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from steerheal_online.config import Config, as_dict
from steerheal_online.data import load_prompts
from steerheal_online.tracking import make_tracker


def run_pipeline(cfg: Config, num_prompts: int = 6, console: Console | None = None) -> dict:
    console = console or Console()
    prompts = load_prompts(cfg.rollout.prompts_file)[:num_prompts]  # validate input before heavy work
    out_dir = Path(cfg.run.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    from steerheal_online.engine import EngineSpec, make_llm, sampling, shutdown, vllm_generate
    from steerheal_online.generation import chat_ids
    from steerheal_online.models import resolve_model

    t0 = time.perf_counter()
    with console.status(f"resolving model {cfg.model.name} (the first run converts the embedded GGUF once)"):
        resolved = resolve_model(cfg.model.name)
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(resolved.path, revision=cfg.model.revision if resolved.kind == "hub" else None)
    timings = {"timing/resolve": time.perf_counter() - t0}

    tracker = make_tracker(cfg)
    tracker.log_params(as_dict(cfg))
    tracker.set_tags({"model.kind": resolved.kind, "stage": "generate"})
    status = "FAILED"
    try:
        t0 = time.perf_counter()
        with console.status("starting vLLM engine (about a minute on 2 CPU cores)"):
            llm = make_llm(
                EngineSpec(
                    resolved.path, dtype=cfg.model.dtype, max_model_len=cfg.model.max_model_len, seed=cfg.run.seed,
                    kv_cache_gib=cfg.rollout.kv_cache_gib, gpu_memory_utilization=cfg.rollout.gpu_memory_utilization,
                )
            )
        timings["timing/engine_start"] = time.perf_counter() - t0
        try:
            ids = [chat_ids(tok, p) for p in prompts]
            params = sampling(cfg.rollout.max_new_tokens, cfg.rollout.temperature, cfg.rollout.top_p, seed=cfg.run.seed)
            t0 = time.perf_counter()
            outs = [group[0] for group in vllm_generate(llm, ids, params)]
            timings["timing/generate"] = time.perf_counter() - t0
        finally:
            shutdown(llm)
        summary = _summarise(outs, timings["timing/generate"], tok.eos_token_id)
        rows_path = out_dir / "generations.jsonl"
        with rows_path.open("w") as f:
            for p, c in zip(prompts, outs):
                f.write(json.dumps({"prompt": p, "completion": c.text, "finish_reason": c.finish_reason, "tokens": len(c.token_ids)}) + "\n")
        tracker.log_metrics({**summary, **timings})
        tracker.log_artifact(rows_path)
        _print(console, prompts, outs, summary)
        status = "FINISHED"
        return {"summary": summary, "timings": timings, "generations": str(rows_path), "mlflow_run_id": tracker.run_id}
    finally:
        tracker.end(status)


def _summarise(outs, seconds: float, eos_id: int) -> dict[str, float]:
    n_tok = sum(len(c.token_ids) for c in outs)
    return {
        "gen/tokens_per_s": n_tok / max(seconds, 1e-9),
        "gen/mean_tokens": n_tok / len(outs),
        "gen/stopped_at_eos": sum(c.finish_reason == "stop" for c in outs) / len(outs),
        "gen/empty": sum(not c.text.strip() for c in outs) / len(outs),
    }


def _print(console: Console, prompts, outs, summary) -> None:
    table = Table("prompt", "completion", "finish", title="completions (unsteered)", show_lines=True)
    for p, c in zip(prompts, outs):
        table.add_row(p, c.text.strip(), c.finish_reason)
    console.print(table)
    s = Table("measure", "value", "healthy")
    s.add_row("tokens/s", f"{summary['gen/tokens_per_s']:.1f}", ">= 50 on 2 CPU cores for SmolLM2 batched")
    s.add_row("mean tokens", f"{summary['gen/mean_tokens']:.1f}", "<= max_new_tokens")
    s.add_row("stopped at EOS", f"{summary['gen/stopped_at_eos']:.2f}", "higher = fewer truncations")
    s.add_row("empty", f"{summary['gen/empty']:.2f}", "0.00")
    console.print(s)
