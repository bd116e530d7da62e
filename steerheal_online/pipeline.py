"""`steerheal run`: the most complete real pipeline the product has so far.

Phases (each timed as `timing/<phase>`):
  extract   persona-contrast vector on the config's band (saved under <output_dir>/vector)
  calibrate iso-KL coefficient, when steering.strength_unit is "calibrated"
  probe     trait shift (forced-choice log-odds, nats) at the run's strength
  generate  unsteered and steered completions for held-out prompts from one vLLM engine
  fluency   exp(-dNLL): the unsteered model reading the steered text against its own
Outputs: <output_dir>/generations.jsonl, the vector, an MLflow run, and a summary table.
The online loop (rollout -> score -> learn -> sync) replaces `generate` in time.
"""

from __future__ import annotations

import json
import math
import time
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.table import Table

from steerheal_online.config import Config, as_dict
from steerheal_online.data import load_prompts
from steerheal_online.tracking import make_tracker


@contextmanager
def _phase(name: str, timings: dict, console: Console, what: str):
    t0 = time.perf_counter()
    with console.status(what):
        yield
    timings[f"timing/{name}"] = time.perf_counter() - t0


def run_pipeline(cfg: Config, num_prompts: int = 6, console: Console | None = None) -> dict:
    from steerheal_online.steer_ops import probes_for

    console = console or Console()
    prompts = load_prompts(cfg.rollout.prompts_file)[:num_prompts]  # bad input fails here, before heavy work
    probes = probes_for(cfg)
    out_dir = Path(cfg.run.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tracker = make_tracker(cfg)
    tracker.log_params(as_dict(cfg))
    status = "FAILED"
    try:
        result = _run(cfg, prompts, probes, out_dir, tracker, console)
        status = "FINISHED"
        return result
    finally:
        tracker.end(status)


def _run(cfg: Config, prompts, probes, out_dir: Path, tracker, console: Console) -> dict:
    from steerheal_online.calibrate import calibrate
    from steerheal_online.engine import sampling, shutdown
    from steerheal_online.generation import chat_ids
    from steerheal_online.models import load_hf
    from steerheal_online.probes import score_probes
    from steerheal_online.steer_ops import band_only, extract_for, raw_strength
    from steerheal_online.steered_generation import engine_for, generate_pair
    from steerheal_online.steering import steer
    from steerheal_online.sweep import text_nll

    timings: dict[str, float] = {}
    with _phase("load", timings, console, f"loading {cfg.model.name} (the first run converts the embedded GGUF once)"):
        model, tok = load_hf(cfg.model.name, cfg.model.dtype, cfg.model.revision)
    with _phase("extract", timings, console, f"extracting the vector over {cfg.steering.num_contexts} contexts"):
        vec = band_only(cfg, extract_for(cfg, model, tok))
    if cfg.steering.strength_unit == "calibrated":
        with _phase("calibrate", timings, console, f"calibrating to p95 KL {cfg.steering.target_kl} nats"):
            cal = calibrate(model, tok, vec, prompts, cfg.steering.target_kl)
            vec.calibrated_coef, vec.target_kl = cal.coef, cal.target
    vec.save(out_dir / "vector")
    strength = raw_strength(cfg, vec)
    with _phase("probe", timings, console, f"scoring {len(probes)} probe items unsteered and steered"):
        base = score_probes(model, tok, probes)
        with steer(model, vec, strength):
            steered = score_probes(model, tok, probes)
    ids = [chat_ids(tok, p) for p in prompts]
    with _phase("engine_start", timings, console, "starting vLLM with steering hooks (about a minute on 2 CPU cores)"):
        llm = engine_for(cfg, vec.layers)
    try:
        params = sampling(cfg.rollout.max_new_tokens, cfg.rollout.temperature, cfg.rollout.top_p, seed=cfg.run.seed)
        with _phase("generate", timings, console, "generating unsteered and steered completions"):
            plain, steered_outs = generate_pair(llm, ids, vec, strength, params)
    finally:
        shutdown(llm)

    with _phase("fluency", timings, console, "reading the completions with the unsteered model"):
        # Same gauge as `steer sweep`: how well the base model reads the steered text vs its own.
        d_nll = text_nll(model, tok, ids, [c.token_ids for c in steered_outs]) - text_nll(model, tok, ids, [c.token_ids for c in plain])
    n_tok = sum(len(c.token_ids) for c in plain + steered_outs)
    metrics = {
        "steer/strength_raw": strength,
        "probe/trait_base": base.trait_nats,
        "probe/trait_steered": steered.trait_nats,
        "probe/trait_shift": steered.trait_nats - base.trait_nats,
        "probe/answer_nll_shift": steered.answer_nll - base.answer_nll,  # confounded: half the answers are the opposite trait
        "gen/fluency": min(1.0, math.exp(-d_nll)),
        "gen/tokens_per_s": n_tok / timings["timing/generate"],
        "gen/steered_stopped_at_eos": sum(c.finish_reason == "stop" for c in steered_outs) / len(steered_outs),
        **timings,
    }
    rows_path = out_dir / "generations.jsonl"
    with rows_path.open("w") as f:
        for p, a, b in zip(prompts, plain, steered_outs):
            f.write(json.dumps({"prompt": p, "unsteered": a.text, "steered": b.text, "strength": strength}) + "\n")
    tracker.log_metrics(metrics)
    tracker.log_artifact(rows_path)
    tracker.log_artifact(out_dir / "vector" / "vector.json")
    _print(console, prompts, plain, steered_outs, metrics)
    return {"metrics": metrics, "generations": str(rows_path), "mlflow_run_id": tracker.run_id, "vector": str(out_dir / "vector")}


def _print(console: Console, prompts, plain, steered, m) -> None:
    table = Table("prompt", "unsteered", f"steered (x{m['steer/strength_raw']:g})", show_lines=True)
    for p, a, b in zip(prompts, plain, steered):
        table.add_row(p, a.text.strip(), b.text.strip())
    console.print(table)
    s = Table("measure", "value", "healthy", title="summary")
    s.add_row("trait shift (probe log-odds)", f"{m['probe/trait_shift']:+.2f} nats", "> 0: steering moves the trait")
    s.add_row("fluency exp(-dNLL) of steered text", f"{m['gen/fluency']:.2f}", ">= 0.7; lower -> strength too high")
    s.add_row("steered stopped at EOS", f"{m['gen/steered_stopped_at_eos']:.2f}", "similar to unsteered")
    s.add_row("vLLM tokens/s", f"{m['gen/tokens_per_s']:.1f}", ">= 50 on 2 CPU cores for SmolLM2")
    for k, v in m.items():
        if k.startswith("timing/"):
            s.add_row(k, f"{v:.1f} s", "")
    console.print(s)
