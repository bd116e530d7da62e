"""Dose-response sweep: trait shift and coherence against steering strength, per layer.

For each layer (and the whole band) and each strength c on a grid starting at 0:
  trait(c) = probe log-odds shift against c = 0, in nats (probes.py)
  fluency(c) = exp(-(NLL_c - NLL_0)): NLL under the *unsteered* model of what the steered
               model writes (greedy continuations of held-out prompts), against the
               unsteered model's own continuations; 1 = reads as well as the base's text,
               0.5 = every token half as likely. (Probe answers are no gauge here: half
               of them are the opposite trait, which steering makes unlikely by design.)
Then, per layer, the *radius of linear validity*: the largest c up to which a line
through the points still describes trait(c) (the quadratic term of a fit on the same
points stays under `bend` of the linear term at the edge, and R^2 of the line >= r2_min)
and fluency stays above the floor. Slope and R^2 are reported over that linear part.
Steering directions stay linear only in a small radius, so this is how to pick a layer
and a strength honestly.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from steerheal_online.generation import hf_generate
from steerheal_online.probes import completion_nll, score_probes
from steerheal_online.steering import SteeringVector, steer


@dataclass
class LayerCurve:
    name: str  # "L15" or "band 13-16"
    layers: list[int]
    strengths: list[float]
    trait: list[float]  # shift vs c = 0, nats
    fluency: list[float]
    slope: float = math.nan  # nats per unit strength over the linear part
    r2: float = math.nan
    radius: float = 0.0  # largest strength still linear and fluent
    stop_reason: str = ""  # why the linear part ends
    extra: dict = field(default_factory=dict)


def _fit(c: np.ndarray, y: np.ndarray, degree: int) -> tuple[np.ndarray, float]:
    coef = np.polyfit(c, y, degree)
    pred = np.polyval(coef, c)
    ss_res, ss_tot = float(((y - pred) ** 2).sum()), float(((y - y.mean()) ** 2).sum())
    return coef, (1.0 - ss_res / ss_tot) if ss_tot > 0 else 1.0


def linear_radius(strengths, trait, fluency, floor: float = 0.7, bend: float = 0.2, r2_min: float = 0.95):
    """(radius, slope, r2, reason) for one curve; strengths ascending, strengths[0] == 0."""
    c, y, fl = np.asarray(strengths, float), np.asarray(trait, float), np.asarray(fluency, float)
    last_ok, slope, r2, reason = 0, math.nan, math.nan, "grid ended while still linear"
    for k in range(1, len(c)):
        if fl[k] < floor:
            reason = f"fluency {fl[k]:.2f} < floor {floor} at c={c[k]:g}"
            break
        if k >= 2:
            (a1, _), r2_lin = _fit(c[: k + 1], y[: k + 1], 1)
            q2, q1, _ = _fit(c[: k + 1], y[: k + 1], 2)[0]
            if abs(q2) * c[k] ** 2 > bend * abs(q1) * c[k] or r2_lin < r2_min:
                reason = f"bends at c={c[k]:g} (quadratic term {abs(q2) * c[k] ** 2:.2f} vs linear {abs(q1) * c[k]:.2f}, R2 {r2_lin:.3f})"
                break
        last_ok = k
    if last_ok >= 1:
        (slope, _), r2 = _fit(c[: last_ok + 1], y[: last_ok + 1], 1)
    if last_ok < 2:
        r2 = math.nan  # a line through two points says nothing about linearity
    return float(c[last_ok]), float(slope), float(r2), reason


@torch.no_grad()
def text_nll(model, tok, prompt_ids: list[list[int]], completions: list[list[int]]) -> float:
    """Mean per-token NLL of completions under `model` as it is now (call it unsteered)."""
    nll = [completion_nll(model, tok, p, [c])[0] for p, c in zip(prompt_ids, completions) if c]
    return float(torch.cat(nll).mean()) if nll else math.inf


def sweep(model, tok, vec: SteeringVector, probes: list[dict], strengths: list[float], layer_sets: dict[str, list[int]],
          prompt_ids: list[list[int]], floor: float = 0.7, new_tokens: int = 32, progress=None) -> list[LayerCurve]:
    """One curve per named layer set; strength 0 is the reference and is always included."""
    strengths = [0.0] + sorted(s for s in set(strengths) if s != 0)
    base = score_probes(model, tok, probes)
    base_nll = text_nll(model, tok, prompt_ids, [c.token_ids for c in hf_generate(model, tok, prompt_ids, new_tokens)])
    curves = []
    for name, layers in layer_sets.items():
        sub = vec.subset(layers)
        trait, flu = [0.0], [1.0]
        for s in strengths[1:]:
            with steer(model, sub, s):
                sc = score_probes(model, tok, probes)
                outs = hf_generate(model, tok, prompt_ids, new_tokens)
            nll = text_nll(model, tok, prompt_ids, [c.token_ids for c in outs])  # hooks gone: base model reads it
            trait.append(sc.trait_nats - base.trait_nats)
            flu.append(min(1.0, math.exp(-(nll - base_nll))))
            if progress is not None:
                progress()
        radius, slope, r2, reason = linear_radius(strengths, trait, flu, floor)
        curves.append(LayerCurve(name, layers, list(strengths), trait, flu, slope, r2, radius, reason, {"floor": floor}))
    return curves


def plot_curves(curves: list[LayerCurve], path: str, title: str = "") -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 7), sharex=True)
    for cv in curves:
        line, = ax1.plot(cv.strengths, cv.trait, marker="o", label=f"{cv.name} (radius {cv.radius:g})")
        if cv.radius > 0 and not math.isnan(cv.slope):
            xs = np.linspace(0, cv.radius, 10)
            ax1.plot(xs, cv.slope * xs, ls="--", color=line.get_color(), alpha=0.6)
        ax2.plot(cv.strengths, cv.fluency, marker="o", color=line.get_color())
    ax1.set_ylabel("trait shift (probe log-odds, nats)")
    ax1.legend(fontsize=8)
    ax1.set_title(title or "dose-response (dashed: linear fit within the radius)")
    ax2.set_ylabel("fluency = exp(-dNLL)")
    ax2.set_xlabel("steering strength (multiples of the vector)")
    ax2.axhline(curves[0].extra.get("floor", 0.7) if curves else 0.7, color="grey", ls=":", label="floor")
    ax2.set_ylim(0, 1.05)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def curves_to_json(curves: list[LayerCurve]) -> list[dict]:
    return [asdict(c) for c in curves]
