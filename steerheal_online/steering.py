"""Steering vectors: extract from a persona pair, apply in transformers, save and load.

    vec = extract(model, tok, pos, neg, contexts, layers=band_layers((0.45, 0.55), 30))
    with steer(model, vec, strength=3.0):
        ...  # every forward adds 3.0 * vec[i] to layer i's output (the residual stream)
    vec.save("runs/x/vector")  # vector.safetensors + vector.json

The same meaning inside vLLM lives in steering_vllm.py (a worker extension).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from steerheal_online.errors import SteerhealError
from steerheal_online.generation import chat_ids, pad_batch


@dataclass
class SteeringVector:
    vectors: dict[int, torch.Tensor]  # layer -> (H,) fp32, added to that layer's output
    model_id: str
    num_layers: int
    hidden_size: int
    pos: str = ""
    neg: str = ""
    method: str = "mean_diff"  # mean_diff | pca
    contexts_hash: str = ""
    calibrated_coef: float | None = None  # iso-KL coefficient (strength for target_kl)
    target_kl: float | None = None
    report: list[dict] = field(default_factory=list)  # per-layer extraction diagnostics

    @property
    def layers(self) -> list[int]:
        return sorted(self.vectors)

    def subset(self, layers: list[int]) -> "SteeringVector":
        """The same vector (and metadata) restricted to `layers`."""
        return replace(self, vectors={i: self.vectors[i] for i in layers})

    def meta(self) -> dict:
        d = asdict(self)
        d.pop("vectors")
        d["layers"] = self.layers
        return d

    def save(self, path: str | Path) -> Path:
        """Write `<path>/vector.safetensors` + `<path>/vector.json` (tmp + rename, so never half-written)."""
        from safetensors.torch import save_file

        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        tensors = {f"layer.{i}": v.contiguous().float() for i, v in self.vectors.items()}
        save_file(tensors, str(out / "vector.safetensors.tmp"))
        (out / "vector.json.tmp").write_text(json.dumps(self.meta(), indent=1))
        (out / "vector.safetensors.tmp").replace(out / "vector.safetensors")
        (out / "vector.json.tmp").replace(out / "vector.json")
        return out

    @classmethod
    def load(cls, path: str | Path) -> "SteeringVector":
        from safetensors.torch import load_file

        p = Path(path)
        st, js = p / "vector.safetensors", p / "vector.json"
        if not st.is_file() or not js.is_file():
            raise SteerhealError(f"{p}: expected vector.safetensors and vector.json in this directory")
        try:
            meta = json.loads(js.read_text())
            tensors = load_file(str(st))
        except Exception as exc:  # corrupt JSON or safetensors header
            raise SteerhealError(f"{p}: unreadable vector file ({exc})") from None
        vectors = {int(k.split(".", 1)[1]): v.float() for k, v in tensors.items()}
        meta.pop("layers", None)
        try:
            vec = cls(vectors=vectors, **meta)
        except TypeError as exc:
            raise SteerhealError(f"{js}: unexpected metadata ({exc})") from None
        for i, v in vectors.items():
            if v.shape != (vec.hidden_size,) or not torch.isfinite(v).all():
                raise SteerhealError(f"{st}: layer {i} must be a finite vector of size {vec.hidden_size}, got shape {tuple(v.shape)}")
        return vec

    def check_fits(self, num_layers: int, hidden_size: int, where: str = "vector") -> None:
        if hidden_size != self.hidden_size or num_layers != self.num_layers:
            raise SteerhealError(
                f"{where}: made for a model with {self.num_layers} layers x hidden {self.hidden_size} "
                f"({self.model_id}); this model has {num_layers} layers x hidden {hidden_size}"
            )


def model_dims(model) -> tuple[int, int]:
    cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return cfg.num_hidden_layers, cfg.hidden_size


def band_layers(band: tuple[float, float], num_layers: int) -> list[int]:
    """Layers whose depth fraction falls in [lo, hi]; at least one (the nearest)."""
    lo, hi = band
    first = min(int(math.floor(lo * num_layers)), num_layers - 1)
    last = max(first, min(int(math.ceil(hi * num_layers)) - 1, num_layers - 1))
    return list(range(first, last + 1))


def decoder_layers(model):
    inner = model.get_decoder() if hasattr(model, "get_decoder") else model.model
    return inner.layers


@contextlib.contextmanager
def steer(model, vec: SteeringVector | None, strength: float):
    """Add `strength * vec[i]` to layer i's output for the duration; hooks removed on exit or error."""
    if vec is None or strength == 0.0:
        yield
        return
    layers = decoder_layers(model)
    vec.check_fits(*model_dims(model))
    p = next(model.parameters())
    handles = []
    try:
        for i, v in vec.vectors.items():
            add = (strength * v).to(device=p.device, dtype=p.dtype)
            handles.append(layers[i].register_forward_hook(_add_hook(add)))
        yield
    finally:
        for h in handles:
            h.remove()


def _add_hook(add: torch.Tensor):
    def hook(module, args, output):
        if isinstance(output, tuple):
            return (output[0] + add,) + tuple(output[1:])
        return output + add

    return hook


def contexts_hash(contexts: list[str]) -> str:
    return hashlib.sha256("\n".join(contexts).encode()).hexdigest()[:16]


@torch.no_grad()
def last_token_states(model, tok, system: str, contexts: list[str], layers: list[int], batch_size: int = 16) -> dict[int, torch.Tensor]:
    """Residual stream at the last prompt token (the assistant header), per layer: (N, H)."""
    out: dict[int, list[torch.Tensor]] = {i: [] for i in layers}
    for start in range(0, len(contexts), batch_size):
        ids = [chat_ids(tok, c, system) for c in contexts[start : start + batch_size]]
        x, mask = pad_batch(tok, ids, left=True)  # left pad: last token at -1
        hs = model(input_ids=x, attention_mask=mask, output_hidden_states=True).hidden_states
        for i in layers:
            out[i].append(hs[i + 1][:, -1, :].float())  # hidden_states[i + 1] = output of layer i
    return {i: torch.cat(v) for i, v in out.items()}


def extract(model, tok, pos: str, neg: str, contexts: list[str], layers: list[int], method: str = "mean_diff",
            model_id: str = "") -> SteeringVector:
    """Mean (or first principal component) of h(pos + ctx) - h(neg + ctx) per layer."""
    if method not in ("mean_diff", "pca"):
        raise SteerhealError(f"steering.method: expected 'mean_diff' or 'pca', got {method!r}")
    hp = last_token_states(model, tok, pos, contexts, layers)
    hn = last_token_states(model, tok, neg, contexts, layers)
    vectors, report = {}, []
    for i in layers:
        diffs = hp[i] - hn[i]  # (N, H)
        mean = diffs.mean(0)
        vec = mean if method == "mean_diff" else _pca_direction(diffs, mean)
        cos = torch.nn.functional.cosine_similarity(diffs, mean[None], dim=-1)
        resid = torch.cat([hp[i], hn[i]]).norm(dim=-1).mean()
        vectors[i] = vec
        report.append({
            "layer": i, "vector_norm": float(vec.norm()), "mean_resid_norm": float(resid),
            "norm_ratio": float(vec.norm() / resid), "agreement": float(cos.mean()),
        })
    n_layers, hidden = model_dims(model)
    return SteeringVector(
        vectors=vectors, model_id=model_id, num_layers=n_layers, hidden_size=hidden, pos=pos, neg=neg,
        method=method, contexts_hash=contexts_hash(contexts), report=report,
    )


def _pca_direction(diffs: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """First principal direction of the (uncentred) differences, signed and scaled like the mean.

    Uncentred because the shared offset *is* the signal; scaling by the mean's projection
    keeps strengths comparable between the two methods.
    """
    _, _, vh = torch.linalg.svd(diffs, full_matrices=False)
    u = vh[0]
    proj = torch.dot(mean, u)
    return u * proj  # sign follows the mean difference; |proj| <= |mean|
