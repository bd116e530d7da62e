"""Steering inside vLLM: a worker extension that adds `c * v` to decoder-layer residuals.

vLLM decoder layers return `(hidden, residual)` and defer the residual add to the next
layer's fused add-norm, so the residual stream after layer i is `hidden + residual`;
adding the vector to `residual` is the same as adding it to transformers' layer output.

The engine is built with `worker_extension_cls=STEERING_EXTENSION` (see engine.py); the
driver talks to every worker process through `collective_rpc`, naming the method by the
handle on this class (`SteeringWorkerExtension.steer_set.__name__`), and resets the
prefix cache after every change, because cached KV was computed under the old vector.

Why a worker subclass as well: vLLM traces the model once (Dynamo on CPU, CUDA graphs
on GPU) while the engine starts, and a hook registered after that is silently ignored.
So `SteeringCPUWorker` / `SteeringGPUWorker` install the hooks in `load_model`, before
any tracing, each adding a persistent zero buffer; the extension's RPCs then only
update those buffers in place, which the traced graph reads on every step. The layers
come from `additional_config["steerheal_layers"]`, set by engine.py.
"""

from __future__ import annotations

from typing import Any


class SteeringWorkerExtension:
    """Mixed into vLLM's worker class; `self` is the worker, in the worker process."""

    def _steer_state(self) -> dict[str, Any]:
        state = getattr(self, "_steer", None)
        if state is None:
            raise RuntimeError("steering: this engine was built without steering layers (EngineSpec.steer_layers)")
        return state

    def steer_set(self, vectors: dict[int, list[float]], strength: float) -> dict[str, Any]:
        """Set layer i's addition to `strength * vectors[i]`; layers not given are zeroed."""
        import torch

        state = self._steer_state()
        hidden = self.model_config.get_hidden_size()
        for i in vectors:
            if int(i) not in state["buffers"]:
                raise ValueError(f"steering layer {i} was not installed at engine start (installed: {sorted(state['buffers'])})")
            if len(vectors[i]) != hidden:
                raise ValueError(f"steering vector for layer {i} has size {len(vectors[i])}; the model's hidden size is {hidden}")
        for i, buf in state["buffers"].items():
            if i in vectors or str(i) in vectors:
                v = torch.tensor(vectors.get(i, vectors.get(str(i))), dtype=torch.float32)
                buf.copy_((strength * v).to(dtype=buf.dtype))
            else:
                buf.zero_()
        state["strength"] = float(strength)
        state["active"] = bool(vectors) and strength != 0.0
        return self.steer_info()

    def steer_clear(self) -> dict[str, Any]:
        """Zero every buffer (hooks stay, adding zeros is exact: x + 0 == x)."""
        state = self._steer_state()
        for buf in state["buffers"].values():
            buf.zero_()
        state["strength"], state["active"] = 0.0, False
        return self.steer_info()

    def steer_info(self) -> dict[str, Any]:
        state = self._steer_state()
        return {
            "active": state["active"],
            "strength": state["strength"],
            "layers": sorted(state["buffers"]),
            "norms": {i: float(b.float().norm()) for i, b in state["buffers"].items()},
        }


def _make_hook(buf):
    def hook(module, args, output):
        if isinstance(output, tuple) and len(output) == 2 and output[1] is not None:
            hidden, residual = output
            return hidden, residual + buf
        if isinstance(output, tuple):
            return (output[0] + buf,) + tuple(output[1:])
        return output + buf

    return hook


def install_steering_hooks(worker) -> None:
    """Zero buffers + forward hooks on the configured layers; call before any tracing."""
    import torch

    layers_cfg = (worker.vllm_config.additional_config or {}).get("steerheal_layers")
    if not layers_cfg:
        return
    model = worker.model_runner.get_model()
    layers = getattr(getattr(model, "model", model), "layers", None)
    if layers is None:
        raise RuntimeError(f"steering: cannot find decoder layers on {type(model).__name__}")
    param = next(layers[0].parameters())
    state = {"buffers": {}, "handles": {}, "strength": 0.0, "active": False}
    for i in layers_cfg:
        if not 0 <= int(i) < len(layers):
            raise ValueError(f"steering layer {i} outside the model's {len(layers)} layers")
        buf = torch.zeros(worker.model_config.get_hidden_size(), dtype=param.dtype, device=param.device)
        state["buffers"][int(i)] = buf
        state["handles"][int(i)] = layers[int(i)].register_forward_hook(_make_hook(buf))
    worker._steer = state


def _steering_worker(base: type) -> type:
    class SteeringWorker(base):
        def load_model(self, *args, **kwargs):  # the one override: hooks must exist before tracing
            super().load_model(*args, **kwargs)
            install_steering_hooks(self)

    SteeringWorker.__name__ = SteeringWorker.__qualname__ = f"Steering{base.__name__}"
    return SteeringWorker


def __getattr__(name: str):
    # Built lazily: importing vLLM's CPU worker on a CUDA machine (or vice versa) can fail.
    if name == "SteeringCPUWorker":
        from vllm.v1.worker.cpu_worker import CPUWorker

        return _steering_worker(CPUWorker)
    if name == "SteeringGPUWorker":
        from vllm.v1.worker.gpu_worker import Worker

        return _steering_worker(Worker)
    raise AttributeError(name)


# ---- driver side --------------------------------------------------------------------


def set_steering(llm, vectors: dict[int, "Any"], strength: float) -> list[dict]:
    """Install `strength * vectors` in every worker, then drop KV cached under the old vector."""
    payload = {int(i): [float(x) for x in v.flatten().tolist()] for i, v in vectors.items()}
    infos = llm.collective_rpc(SteeringWorkerExtension.steer_set.__name__, args=(payload, float(strength)))
    llm.reset_prefix_cache()
    return infos


def clear_steering(llm) -> list[dict]:
    infos = llm.collective_rpc(SteeringWorkerExtension.steer_clear.__name__)
    llm.reset_prefix_cache()
    return infos


def steering_info(llm) -> list[dict]:
    return llm.collective_rpc(SteeringWorkerExtension.steer_info.__name__)
