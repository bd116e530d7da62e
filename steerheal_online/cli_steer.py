"""`steerheal steer ...`: extract, calibrate, sweep and generate with a steering vector."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from steerheal_online.cli_common import ConfigOpt, SetOpt, load_cfg

steer_app = typer.Typer(help="Steering vectors: extract, calibrate, sweep, generate.", no_args_is_help=True)
console = Console()
VectorOpt = typer.Option(None, "--vector", "-v", help="vector directory (default: <run.output_dir>/vector; extracted if absent)")


def _model(cfg):
    from steerheal_online.models import load_hf

    with console.status(f"loading {cfg.model.name}"):
        return load_hf(cfg.model.name, cfg.model.dtype, cfg.model.revision)


def _parse_floats(text: str, what: str) -> list[float]:
    try:
        vals = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter(f"{what}: expected comma-separated numbers, got {text!r}") from None
    if not vals or any(v < 0 for v in vals):
        raise typer.BadParameter(f"{what}: expected non-negative numbers, got {text!r}")
    return sorted(set(vals))


@steer_app.command("extract")
def extract_cmd(
    config: str = ConfigOpt, overrides: Optional[list[str]] = SetOpt,
    out: Optional[Path] = typer.Option(None, "--out", help="where to save (default: <run.output_dir>/vector)"),
) -> None:
    """Extract the persona-contrast vector on the config's layer band and save it."""
    from steerheal_online.steer_ops import extract_for, vector_dir

    cfg = load_cfg(config, overrides)
    model, tok = _model(cfg)
    with console.status(f"extracting over {cfg.steering.num_contexts} contexts ({cfg.steering.method})"):
        vec = extract_for(cfg, model, tok)
    path = vec.save(out or vector_dir(cfg))
    table = Table("layer", "vector norm", "mean resid norm", "ratio", "agreement", title=f"steering vector -> {path}")
    for r in vec.report:
        table.add_row(str(r["layer"]), f"{r['vector_norm']:.3f}", f"{r['mean_resid_norm']:.2f}", f"{r['norm_ratio']:.4f}", f"{r['agreement']:.3f}")
    console.print(table)
    console.print("healthy: agreement >= 0.5 (pairs agree on the direction); ratio a few % of the residual norm")


@steer_app.command("calibrate")
def calibrate_cmd(
    config: str = ConfigOpt, overrides: Optional[list[str]] = SetOpt, vector: Optional[Path] = VectorOpt,
    num_prompts: int = typer.Option(6, min=1, help="prompts whose greedy continuations the KL is read over"),
) -> None:
    """Find the iso-KL coefficient (p95 per-token KL = steering.target_kl) and store it in the vector."""
    from steerheal_online.calibrate import calibrate
    from steerheal_online.data import load_prompts
    from steerheal_online.steer_ops import band_only, load_or_extract, vector_dir

    cfg = load_cfg(config, overrides)
    prompts = load_prompts(cfg.rollout.prompts_file)[:num_prompts]
    model, tok = _model(cfg)
    full = load_or_extract(cfg, model, tok, vector)
    vec = band_only(cfg, full)
    with console.status(f"calibrating to p95 KL = {cfg.steering.target_kl} nats"):
        cal = calibrate(model, tok, vec, prompts, cfg.steering.target_kl)
    full.calibrated_coef, full.target_kl = cal.coef, cal.target
    path = full.save(vector or vector_dir(cfg))
    table = Table("eval", "coefficient", "p95 KL (nats)", title=f"iso-KL calibration -> {path}")
    for n, (c, y) in enumerate(cal.trace, 1):
        table.add_row(str(n), f"{c:.4g}", f"{y:.4f}")
    console.print(table)
    console.print(f"coefficient {cal.coef:.4g} gives p95 KL {cal.achieved:.4f} (target {cal.target}; healthy: within 2%)")


@steer_app.command("sweep")
def sweep_cmd(
    config: str = ConfigOpt, overrides: Optional[list[str]] = SetOpt, vector: Optional[Path] = VectorOpt,
    strengths: str = typer.Option("0,1,2,3,4,6,8,12", help="raw strengths, comma-separated"),
    layers: str = typer.Option("", help="extra single layers to sweep, comma-separated (the band is always swept)"),
    num_probes: int = typer.Option(16, min=2, help="probe items per evaluation"),
    num_prompts: int = typer.Option(6, min=1, help="held-out prompts whose steered continuations the fluency gauge reads"),
    floor: float = typer.Option(0.7, min=0.0, max=1.0, help="fluency floor that ends the linear radius"),
) -> None:
    """Dose-response: trait shift and fluency vs strength per layer; slope, R^2, radius of linear validity."""
    from tqdm import tqdm

    from steerheal_online.data import load_prompts
    from steerheal_online.generation import chat_ids
    from steerheal_online.steer_ops import extract_for, probes_for
    from steerheal_online.steering import SteeringVector, band_layers
    from steerheal_online.sweep import curves_to_json, plot_curves, sweep

    cfg = load_cfg(config, overrides)
    grid = _parse_floats(strengths, "--strengths")
    extra = [int(x) for x in _parse_floats(layers, "--layers")] if layers else []
    probes = probes_for(cfg)[:num_probes]
    model, tok = _model(cfg)
    vec = SteeringVector.load(vector) if vector else None
    if vec is None or any(i not in vec.vectors for i in extra):
        with console.status("extracting vectors for the swept layers"):
            vec = extract_for(cfg, model, tok, extra)
    band = band_layers(cfg.steering.layer_band, vec.num_layers)
    sets = {f"L{i}": [i] for i in sorted(set(extra) | set(band))}
    if len(band) > 1:
        sets[f"band {band[0]}-{band[-1]}"] = band
    prompt_ids = [chat_ids(tok, p) for p in load_prompts(cfg.rollout.prompts_file)[:num_prompts]]
    with tqdm(total=len(sets) * len([g for g in grid if g != 0]), desc="sweep") as bar:
        curves = sweep(model, tok, vec, probes, grid, sets, prompt_ids, floor, progress=bar.update)
    out = Path(cfg.run.output_dir) / "sweep"
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.json").write_text(json.dumps(curves_to_json(curves), indent=1))
    png = plot_curves(curves, str(out / "sweep.png"), f"{cfg.model.name}: {cfg.persona.trait}")
    table = Table("layers", "slope (nats/unit)", "R^2", "radius", "trait at radius", "why it ends", title="dose-response")
    for cv in curves:
        at = cv.trait[cv.strengths.index(cv.radius)]
        table.add_row(cv.name, f"{cv.slope:.3f}", f"{cv.r2:.3f}", f"{cv.radius:g}", f"{at:+.2f}", cv.stop_reason)
    fl = Table("layers", *[f"c={c:g}" for c in curves[0].strengths], title="fluency exp(-dNLL) of steered text under the base model")
    for cv in curves:
        fl.add_row(cv.name, *[f"{f:.2f}" for f in cv.fluency])
    console.print(fl)
    console.print(table)
    console.print(f"plot: {png}; data: {out / 'sweep.json'}. Healthy: radius >= 2 with R^2 >= 0.95; pick a strength inside it.")


@steer_app.command("generate")
def generate_cmd(
    config: str = ConfigOpt, overrides: Optional[list[str]] = SetOpt, vector: Optional[Path] = VectorOpt,
    strength: Optional[float] = typer.Option(None, "--strength", min=0.0, help="steering strength (default: steering.strength, in its unit)"),
    num_prompts: int = typer.Option(3, min=1, help="prompts to show"),
    max_new_tokens: int = typer.Option(48, min=1, help="tokens per completion"),
) -> None:
    """Steered vs unsteered greedy completions side by side (real vLLM engine)."""
    from steerheal_online.steer_ops import band_only, load_or_extract, raw_strength
    from steerheal_online.steered_generation import steered_vs_unsteered

    cfg = load_cfg(config, overrides)
    model, tok = _model(cfg)
    vec = band_only(cfg, load_or_extract(cfg, model, tok, vector))
    s = raw_strength(cfg, vec, strength)
    with console.status("starting vLLM and generating"):
        rows = steered_vs_unsteered(cfg, tok, vec, s, num_prompts, max_new_tokens)
    table = Table("prompt", "unsteered", f"steered (x{s:g})", show_lines=True)
    for r in rows:
        table.add_row(r["prompt"], r["unsteered"], r["steered"])
    console.print(table)
