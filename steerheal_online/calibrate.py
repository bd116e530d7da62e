"""iso-KL calibration: the coefficient at which steering moves the model by a target KL.

    f(c) = p95 over completion tokens of KL(p_steered(c) || p_unsteered)      [nats]

read over short greedy continuations of a few prompts. The continuations are the
*unsteered* model's, generated once, so every c is measured on the same tokens and f
is a smooth, increasing function of c (steered continuations would jump whenever a
greedy token flips, and bisection would chase the jumps). The search brackets the
target by doubling / halving, then runs a safeguarded secant on (log c, log f), which
is close to a line because KL grows like c^2 for small c.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from steerheal_online.generation import chat_ids, hf_generate, pad_batch
from steerheal_online.steering import SteeringVector, steer


@dataclass
class Calibration:
    coef: float  # the calibrated coefficient (raw multiple of the vector)
    achieved: float  # f(coef), nats
    target: float
    trace: list[tuple[float, float]] = field(default_factory=list)  # (c, f(c)) evaluations, in order


def kl_per_token(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """Exact KL(p || q) over the vocabulary at each position: (..., V) -> (...)."""
    lp, lq = torch.log_softmax(logits_p.float(), -1), torch.log_softmax(logits_q.float(), -1)
    return (lp.exp() * (lp - lq)).sum(-1)


class KLProbe:
    """Holds the fixed continuations and unsteered logits; `__call__(c)` gives f(c)."""

    def __init__(self, model, tok, vec: SteeringVector, prompts: list[str], new_tokens: int = 24, quantile: float = 0.95):
        self.model, self.vec, self.quantile = model, vec, quantile
        prompt_ids = [chat_ids(tok, p) for p in prompts]
        outs = hf_generate(model, tok, prompt_ids, new_tokens)
        self.ids, self.attn = pad_batch(tok, [c.prompt_ids + c.token_ids for c in outs])
        self.mask = torch.zeros_like(self.ids, dtype=torch.bool)  # positions that predict completion tokens
        for n, c in enumerate(outs):
            a = len(c.prompt_ids) - 1
            self.mask[n, a : a + len(c.token_ids)] = True
        self.base = self._logits()

    @torch.no_grad()
    def _logits(self) -> torch.Tensor:
        return self.model(input_ids=self.ids, attention_mask=self.attn).logits.float()

    def per_token(self, c: float) -> torch.Tensor:
        with steer(self.model, self.vec, c):
            steered = self._logits()
        return kl_per_token(steered, self.base)[self.mask]  # (N_completion_tokens,)

    def __call__(self, c: float) -> float:
        return float(torch.quantile(self.per_token(c), self.quantile))


def calibrate(model, tok, vec: SteeringVector, prompts: list[str], target: float = 1.0, new_tokens: int = 24,
              rtol: float = 0.02, max_evals: int = 40, start: float = 1.0) -> Calibration:
    f = KLProbe(model, tok, vec, prompts, new_tokens)
    trace: list[tuple[float, float]] = []

    def ev(c: float) -> float:
        y = f(c)
        trace.append((c, y))
        return y

    lo, hi = None, None  # (c, f) with f < target, and with f >= target
    c = start
    while len(trace) < max_evals:  # bracket: double up or halve down from `start`
        y = ev(c)
        if abs(y / target - 1) <= rtol:
            return Calibration(c, y, target, trace)
        if y < target:
            lo = (c, y)
            if hi is not None:
                break
            c *= 2.0
        else:
            hi = (c, y)
            if lo is not None:
                break
            c /= 2.0
        if c > 1e6 or c < 1e-6:
            raise RuntimeError(f"calibration could not bracket KL target {target} (last f({c:g}) = {y:.4g}); trace: {trace}")
    while len(trace) < max_evals:  # safeguarded secant on (log c, log f)
        (c0, y0), (c1, y1) = lo, hi
        lc0, lc1 = math.log(c0), math.log(c1)
        ly0, ly1, lt = math.log(max(y0, 1e-12)), math.log(y1), math.log(target)
        guess = lc0 + (lt - ly0) * (lc1 - lc0) / (ly1 - ly0) if ly1 > ly0 else (lc0 + lc1) / 2
        mid = (lc0 + lc1) / 2
        # Fall back to bisection when the secant lands near an end (slow one-sided convergence).
        lc = guess if lc0 + 0.1 * (lc1 - lc0) < guess < lc1 - 0.1 * (lc1 - lc0) else mid
        c = math.exp(lc)
        y = ev(c)
        if abs(y / target - 1) <= rtol:
            return Calibration(c, y, target, trace)
        if y < target:
            lo = (c, y)
        else:
            hi = (c, y)
    best = min(trace, key=lambda t: abs(t[1] - target))
    return Calibration(best[0], best[1], target, trace)
