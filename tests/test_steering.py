"""Steering vectors on the tiny model: extraction, HF and vLLM hooks agree, restore, files, calibration."""

from __future__ import annotations

import json
import math

import pytest
import torch

from steerheal_online.calibrate import KLProbe, calibrate
from steerheal_online.data import load_contexts
from steerheal_online.engine import sampling, vllm_generate
from steerheal_online.errors import SteerhealError
from steerheal_online.generation import chat_ids, hf_generate
from steerheal_online.steering import SteeringVector, band_layers, extract, last_token_states, steer
from steerheal_online.steering_vllm import clear_steering, set_steering, steering_info
from steerheal_online.sweep import linear_radius

POS = "You are someone who always sees the bright side of everything."
NEG = "You are someone who always sees the dark side of everything."
PROMPTS = ["Hello there, how are you?", "Tell me about rain.", "What is two plus two?", "Name a colour.", "Describe a cat."]
TINY_LAYERS = [1, 2]  # band (0.45, 0.55) of 4 layers


@pytest.fixture(scope="module")
def tiny_vec(tiny_hf, tiny_dir):
    model, tok = tiny_hf
    return extract(model, tok, POS, NEG, load_contexts()[:24], TINY_LAYERS, model_id=tiny_dir)


def _strength(vec: SteeringVector) -> float:
    # Half the residual norm at the read point: clearly visible, not yet pure noise.
    return 0.5 / min(r["norm_ratio"] for r in vec.report)


@pytest.mark.parametrize("band,n,expected", [((0.45, 0.55), 4, [1, 2]), ((0.5, 0.52), 30, [15]), ((0.45, 0.55), 30, [13, 14, 15, 16]),
                                             ((0.0, 1.0), 4, [0, 1, 2, 3]), ((1.0, 1.0), 4, [3]), ((0.0, 0.0), 4, [0])])
def test_band_layers(band, n, expected):
    assert band_layers(band, n) == expected


def test_extraction_is_the_mean_pair_difference(tiny_hf, tiny_vec):
    model, tok = tiny_hf
    ctx = load_contexts()[:24]
    hp = last_token_states(model, tok, POS, ctx, [2], batch_size=5)[2]  # other batch size: padding must not matter
    hn = last_token_states(model, tok, NEG, ctx, [2], batch_size=7)[2]
    torch.testing.assert_close(tiny_vec.vectors[2], (hp - hn).mean(0), atol=1e-5, rtol=1e-4)
    # One unpadded forward gives the same state as the padded batch.
    single = model(input_ids=torch.tensor([chat_ids(tok, ctx[0], POS)]), output_hidden_states=True).hidden_states[3][0, -1]
    torch.testing.assert_close(hp[0], single, atol=1e-5, rtol=1e-4)
    for r in tiny_vec.report:
        assert -1 <= r["agreement"] <= 1 and r["vector_norm"] > 0 and r["mean_resid_norm"] > r["vector_norm"]


def test_pca_variant_points_the_same_way(tiny_hf, tiny_vec):
    model, tok = tiny_hf
    pca = extract(model, tok, POS, NEG, load_contexts()[:24], TINY_LAYERS, method="pca")
    for i in TINY_LAYERS:
        cos = torch.nn.functional.cosine_similarity(pca.vectors[i], tiny_vec.vectors[i], dim=0)
        assert cos > 0.9  # pairs agree strongly on this direction (report agreement ~0.99)
        assert pca.vectors[i].norm() <= tiny_vec.vectors[i].norm() * 1.0001  # scaled by the projection of the mean
    assert pca.method == "pca"


def test_hf_context_manager_restores_exactly(tiny_hf, tiny_vec):
    model, tok = tiny_hf
    ids = torch.tensor([chat_ids(tok, PROMPTS[0])])
    hooks_before = [len(layer._forward_hooks) for layer in model.model.layers]  # transformers keeps some of its own
    before = model(input_ids=ids).logits
    with steer(model, tiny_vec, _strength(tiny_vec)):
        during = model(input_ids=ids).logits
    after = model(input_ids=ids).logits
    assert not torch.equal(before, during)
    assert torch.equal(before, after)
    with pytest.raises(RuntimeError, match="boom"):
        with steer(model, tiny_vec, 3.0):
            raise RuntimeError("boom")
    assert torch.equal(before, model(input_ids=ids).logits)  # removed on exception too
    assert [len(layer._forward_hooks) for layer in model.model.layers] == hooks_before


def test_hf_and_vllm_steer_token_for_token(tiny_hf, tiny_llm, tiny_vec):
    model, tok = tiny_hf
    ids = [chat_ids(tok, p) for p in PROMPTS]
    s = _strength(tiny_vec)
    hf_plain = [c.token_ids for c in hf_generate(model, tok, ids, 16)]
    with steer(model, tiny_vec, s):
        hf_steered = [c.token_ids for c in hf_generate(model, tok, ids, 16)]
    clear_steering(tiny_llm)
    vl_plain = [g[0].token_ids for g in vllm_generate(tiny_llm, ids, sampling(16))]
    info = set_steering(tiny_llm, tiny_vec.vectors, s)
    assert info[0]["active"] and info[0]["layers"] == [0, 1, 2, 3]  # hooks installed at engine start
    assert [n > 0 for _, n in sorted(info[0]["norms"].items())] == [False, True, True, False]  # only the vector's layers add
    vl_steered = [g[0].token_ids for g in vllm_generate(tiny_llm, ids, sampling(16))]
    clear_steering(tiny_llm)
    vl_restored = [g[0].token_ids for g in vllm_generate(tiny_llm, ids, sampling(16))]

    assert vl_plain == hf_plain
    assert vl_steered == hf_steered  # one meaning, two backends
    assert all(a != b for a, b in zip(hf_plain, hf_steered))  # steering changes every prompt's output
    assert vl_restored == vl_plain  # removing the vector restores unsteered output exactly
    assert steering_info(tiny_llm)[0]["active"] is False


def test_vector_change_is_not_served_from_the_prefix_cache(tiny_hf, tiny_llm, tiny_vec):
    model, tok = tiny_hf
    block = tiny_llm.llm_engine.vllm_config.cache_config.block_size
    long_prompt = " ".join(load_contexts()[:14])
    ids = [chat_ids(tok, long_prompt)]
    assert len(ids[0]) > 2 * block  # whole cached blocks exist for the prompt
    s = _strength(tiny_vec)
    set_steering(tiny_llm, tiny_vec.vectors, s)
    first = vllm_generate(tiny_llm, ids, sampling(12))[0][0].token_ids
    assert vllm_generate(tiny_llm, ids, sampling(12))[0][0].token_ids == first  # cache hit, same vector: same output
    set_steering(tiny_llm, tiny_vec.vectors, -s)  # the opposite direction
    second = vllm_generate(tiny_llm, ids, sampling(12))[0][0].token_ids
    clear_steering(tiny_llm)
    with steer(model, tiny_vec, -s):
        fresh = hf_generate(model, tok, ids, 12)[0].token_ids
    assert second == fresh and second != first


def test_vector_files_round_trip_and_refuse_bad_input(tmp_path, tiny_vec):
    tiny_vec.calibrated_coef = 2.5
    path = tiny_vec.save(tmp_path / "vec")
    meta = json.loads((path / "vector.json").read_text())
    assert {"model_id", "layers", "pos", "neg", "contexts_hash", "calibrated_coef", "method", "num_layers", "hidden_size"} <= meta.keys()
    back = SteeringVector.load(path)
    assert back.layers == tiny_vec.layers and back.calibrated_coef == 2.5 and back.pos == POS
    assert all(torch.equal(back.vectors[i], tiny_vec.vectors[i]) for i in back.layers)

    with pytest.raises(SteerhealError, match="this model has 30 layers x hidden 576"):
        back.check_fits(30, 576)
    with pytest.raises(SteerhealError, match="hidden 64"):
        back.check_fits(4, 64)
    with pytest.raises(SteerhealError, match="expected vector.safetensors and vector.json"):
        SteeringVector.load(tmp_path / "nowhere")

    from safetensors.torch import save_file

    bad = {f"layer.{i}": v.clone() for i, v in tiny_vec.vectors.items()}
    bad["layer.1"][3] = float("nan")
    save_file(bad, str(path / "vector.safetensors"))
    with pytest.raises(SteerhealError, match="layer 1 must be a finite vector"):
        SteeringVector.load(path)
    (path / "vector.safetensors").write_bytes(b"garbage")
    with pytest.raises(SteerhealError, match="unreadable vector file"):
        SteeringVector.load(path)


def test_steering_a_model_of_another_shape_is_refused(tiny_hf, tiny_vec):
    model, _ = tiny_hf
    wrong = SteeringVector({1: torch.zeros(64)}, "x", num_layers=4, hidden_size=64)
    with pytest.raises(SteerhealError, match="made for a model with 4 layers x hidden 64"):
        with steer(model, wrong, 1.0):
            pass


def test_vllm_refuses_a_wrong_sized_vector(tiny_llm):
    with pytest.raises(Exception, match="hidden size is 128"):
        set_steering(tiny_llm, {1: torch.zeros(64)}, 1.0)


def test_calibration_hits_the_target_kl(tiny_hf, tiny_vec):
    model, tok = tiny_hf
    prompts = PROMPTS[:3]
    cal = calibrate(model, tok, tiny_vec, prompts, target=1.0)
    again = KLProbe(model, tok, tiny_vec, prompts)(cal.coef)  # fresh measurement at the returned coefficient
    assert abs(again - 1.0) <= 0.1
    assert cal.trace and all(c > 0 for c, _ in cal.trace)
    low = KLProbe(model, tok, tiny_vec, prompts)
    assert low(cal.coef / 4) < 1.0 < low(cal.coef * 2)  # and it is monotone around the answer


def test_kl_is_zero_without_steering(tiny_hf, tiny_vec):
    model, tok = tiny_hf
    assert KLProbe(model, tok, tiny_vec, PROMPTS[:2])(0.0) == pytest.approx(0.0, abs=1e-6)


def test_linear_radius_on_known_curves():
    c = [0, 1, 2, 3, 4, 6, 8]
    line = [2.0 * x for x in c]
    r, slope, r2, why = linear_radius(c, line, [1.0] * 7)
    assert (r, round(slope, 6), round(r2, 6)) == (8, 2.0, 1.0) and "still linear" in why
    saturating = [0, 2, 4, 6, 7, 7.2, 7.3]  # linear to 3, then bends
    r, slope, _, why = linear_radius(c, saturating, [1.0] * 7)
    assert r == 3 and slope == pytest.approx(2.0) and "bends" in why
    fluency = [1, 0.95, 0.9, 0.8, 0.6, 0.4, 0.3]
    r, _, _, why = linear_radius(c, line, fluency, floor=0.7)
    assert r == 3 and "fluency" in why
    assert math.isnan(linear_radius([0, 1], [0, 1], [1, 0.1], floor=0.7)[1])
    assert math.isnan(linear_radius([0, 1, 2], [0, 1, 2], [1, 1, 0.1], floor=0.7)[2])  # two points: no R^2
