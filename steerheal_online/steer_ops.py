"""Steering operations on a config: what `steerheal steer ...` and `steerheal run` share.

Each takes the typed config plus a loaded (model, tokenizer) and returns plain results;
printing and files are the caller's business.
"""

from __future__ import annotations

from pathlib import Path

from steerheal_online.config import Config
from steerheal_online.data import load_contexts, load_probes
from steerheal_online.errors import SteerhealError
from steerheal_online.steering import SteeringVector, band_layers, extract, model_dims

SHIPPED_PROBES = {"cheerful": "probes_cheerful.jsonl", "care_over_authority": "probes_care_authority.jsonl"}


def vector_dir(cfg: Config) -> Path:
    return Path(cfg.run.output_dir) / "vector"


def probes_for(cfg: Config) -> list[dict]:
    if cfg.persona.probes_file:
        return load_probes(cfg.persona.probes_file)
    if cfg.persona.trait not in SHIPPED_PROBES:
        raise SteerhealError(
            f"persona.probes_file: no shipped probe set for trait {cfg.persona.trait!r} "
            f"(shipped: {', '.join(SHIPPED_PROBES)}); pass a JSONL of question/trait/opposite items"
        )
    return load_probes(None, SHIPPED_PROBES[cfg.persona.trait])


def extract_for(cfg: Config, model, tok, extra_layers: list[int] | None = None) -> SteeringVector:
    """Vector on the config's band (plus any extra layers, e.g. for a sweep)."""
    n_layers, _ = model_dims(model)
    layers = sorted(set(band_layers(cfg.steering.layer_band, n_layers)) | set(extra_layers or []))
    bad = [i for i in layers if not 0 <= i < n_layers]
    if bad:
        raise SteerhealError(f"layers {bad} are outside the model's {n_layers} layers")
    contexts = load_contexts(cfg.steering.contexts_file)[: cfg.steering.num_contexts]
    return extract(model, tok, cfg.persona.pos, cfg.persona.neg, contexts, layers, cfg.steering.method, cfg.model.name)


def band_only(cfg: Config, vec: SteeringVector) -> SteeringVector:
    layers = band_layers(cfg.steering.layer_band, vec.num_layers)
    missing = [i for i in layers if i not in vec.vectors]
    if missing:
        raise SteerhealError(f"vector has no layers {missing} of steering.layer_band {list(cfg.steering.layer_band)}; re-extract")
    return vec.subset(layers)


def load_or_extract(cfg: Config, model, tok, path: str | Path | None = None) -> SteeringVector:
    """The saved vector at `path` (default: the run's vector dir) checked against the model, else a fresh one."""
    p = Path(path) if path else vector_dir(cfg)
    if (p / "vector.json").is_file() or path:
        vec = SteeringVector.load(p)
        vec.check_fits(*model_dims(model), where=str(p))
        return vec
    vec = extract_for(cfg, model, tok)
    vec.save(p)
    return vec


def raw_strength(cfg: Config, vec: SteeringVector, strength: float | None = None) -> float:
    """Config strength (or `strength`) as a raw multiple of the vector."""
    s = cfg.steering.strength if strength is None else strength
    if cfg.steering.strength_unit == "raw":
        return s
    if vec.calibrated_coef is None:
        raise SteerhealError("steering.strength_unit is 'calibrated' but the vector has no calibrated coefficient: run `steerheal steer calibrate`")
    return s * vec.calibrated_coef
