"""The embedded SmolLM2 really steers: cheerful vs gloomy at 2-4x the mean-difference vector.

Trait is read three ways: the forced-choice probe log-odds (nats), the persona
log-ratio of the text the steered vLLM engine wrote (nats/token, base model: does it
read more like the cheerful persona wrote it?), and the text must stay readable
(base-model NLL of the steered text close to that of the unsteered text; real words,
no loops).
"""

from __future__ import annotations

import math
import re

import pytest

from steerheal_online.config import load_config
from steerheal_online.data import load_prompts
from steerheal_online.engine import sampling, vllm_generate
from steerheal_online.generation import chat_ids
from steerheal_online.probes import persona_logratio, score_probes
from steerheal_online.steer_ops import band_only, extract_for, probes_for
from steerheal_online.steering import steer
from steerheal_online.steering_vllm import clear_steering, set_steering
from steerheal_online.sweep import text_nll

CFG = load_config("default")


@pytest.fixture(scope="module")
def smol_vec(smol_hf):
    model, tok = smol_hf
    return band_only(CFG, extract_for(CFG, model, tok))


def _readable(text: str) -> bool:
    words = re.findall(r"[A-Za-z']+", text)
    return len(words) >= 8 and len({w.lower() for w in words}) / len(words) > 0.45


def test_default_vector_sits_at_layer_15(smol_vec):
    assert smol_vec.layers == [15]
    assert smol_vec.report[0]["agreement"] > 0.5  # the pairs agree on one direction


def test_cheerful_vector_makes_smollm2_more_cheerful_and_stays_readable(smol_hf, smol_llm, smol_vec):
    model, tok = smol_hf
    probes = probes_for(CFG)
    prompts = load_prompts()[:8]
    ids = [chat_ids(tok, p) for p in prompts]
    params = sampling(40)

    clear_steering(smol_llm)
    plain = [g[0] for g in vllm_generate(smol_llm, ids, params)]
    base_probe = score_probes(model, tok, probes).trait_nats
    base_ratio = _mean_ratio(model, tok, prompts, plain)
    base_nll = text_nll(model, tok, ids, [c.token_ids for c in plain])
    report = {}
    for s in (2.0, 4.0):
        set_steering(smol_llm, smol_vec.vectors, s)
        outs = [g[0] for g in vllm_generate(smol_llm, ids, params)]
        with steer(model, smol_vec, s):
            probe = score_probes(model, tok, probes).trait_nats
        ratio = _mean_ratio(model, tok, prompts, outs)
        fluency = math.exp(-(text_nll(model, tok, ids, [c.token_ids for c in outs]) - base_nll))
        report[s] = (probe - base_probe, ratio - base_ratio, fluency, sum(_readable(c.text) for c in outs))
    clear_steering(smol_llm)
    print("strength: (probe shift nats, persona log-ratio shift nats/token, fluency, readable of 8)", report)
    (p2, r2, f2, ok2), (p4, r4, f4, ok4) = report[2.0], report[4.0]
    assert p2 > 3.0 and p4 > p2  # probe: more cheerful, more so at 4x
    assert r2 > 0.05 and r4 > r2  # the written text reads more like the cheerful persona
    assert f2 > 0.5 and f4 > 0.3  # and the base model can still read it
    assert ok2 >= 7 and ok4 >= 6  # real words, no loops


def _mean_ratio(model, tok, prompts, outs) -> float:
    vals = [persona_logratio(model, tok, p, [c.token_ids], CFG.persona.pos, CFG.persona.neg)[0] for p, c in zip(prompts, outs)]
    return sum(vals) / len(vals)
