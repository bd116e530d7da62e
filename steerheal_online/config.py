"""The one typed config: YAML -> validated pydantic object -> dotted CLI overrides.

Every field carries one short comment (its `description`) and its allowed range, so a
bad value is refused before anything heavy starts, with a message that names the field:

    from steerheal_online.config import load_config
    cfg = load_config("default", overrides=["learner.kl_weight=0.1"])

`load_config` accepts a shipped config name (`default`, `authority_4b`) or a YAML path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from steerheal_online.errors import ConfigError

CONFIG_DIR = Path(__file__).parent / "configs"
EMBEDDED_MODELS = ("smollm2-135m-instruct",)


class _Section(BaseModel):
    # Unknown keys are typos far more often than intent: refuse them.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _existing_file(value: str | None, what: str) -> str | None:
    if value is not None and not Path(value).expanduser().is_file():
        raise ValueError(f"{what} file not found: {value!r} (expected an existing file path, or null for the shipped set)")
    return value


class RunConfig(_Section):
    name: str = Field("default", min_length=1, description="run name; also the MLflow run name")
    seed: int = Field(0, ge=0, description="seed for sampling, LoRA init and data order")
    output_dir: str = Field("runs/default", min_length=1, description="checkpoints, plots and vectors go here")


class ModelConfig(_Section):
    name: str = Field(
        "smollm2-135m-instruct",
        min_length=1,
        description="embedded alias, hub id (org/name), local model directory, or a .gguf file",
    )
    dtype: Literal["float32", "bfloat16", "float16"] = Field("float32", description="weights dtype (float32 on CPU)")
    revision: str | None = Field(None, description="hub revision; ignored for local models")
    max_model_len: int = Field(1024, ge=64, le=131072, description="context length the vLLM engine reserves")

    @field_validator("name")
    @classmethod
    def _local_paths_exist(cls, v: str) -> str:
        looks_local = v.startswith(("/", "./", "../", "~")) or v.endswith(".gguf")
        if looks_local and not Path(v).expanduser().exists():
            raise ValueError(f"model path does not exist: {v!r} (expected a directory with config.json, or a .gguf file)")
        return v


class PersonaConfig(_Section):
    trait: str = Field("cheerful", min_length=1, description="short name of the trait the pos persona expresses")
    pos: str = Field(..., min_length=10, description="system prompt that expresses the trait")
    neg: str = Field(..., min_length=10, description="system prompt that expresses its direct opposite, same framing")
    probes_file: str | None = Field(None, description="forced-choice probe JSONL; null = the shipped set for `trait`")

    @field_validator("probes_file")
    @classmethod
    def _probes_exist(cls, v: str | None) -> str | None:
        return _existing_file(v, "probes")

    @model_validator(mode="after")
    def _distinct(self) -> "PersonaConfig":
        if self.pos.strip() == self.neg.strip():
            raise ValueError("persona.pos and persona.neg are identical; the steering vector would be zero")
        return self


class SteeringConfig(_Section):
    layer_band: tuple[float, float] = Field(
        (0.45, 0.55), description="[lo, hi] fractions of depth whose residual gets the vector; narrow is safer"
    )
    method: Literal["mean_diff", "pca"] = Field("mean_diff", description="how pair differences become one vector")
    strength: float = Field(3.0, ge=0.0, le=100.0, description="coefficient on the vector (see strength_unit)")
    strength_unit: Literal["raw", "calibrated"] = Field(
        "raw", description="raw = multiples of the mean-difference vector; calibrated = multiples of the iso-KL coefficient"
    )
    target_kl: float = Field(1.0, gt=0.0, le=20.0, description="iso-KL calibration target: p95 per-token KL in nats")
    contexts_file: str | None = Field(None, description="user contexts for extraction (one per line); null = shipped set")
    num_contexts: int = Field(64, ge=2, le=10000, description="how many contexts extraction averages over")

    @field_validator("layer_band")
    @classmethod
    def _band(cls, v: tuple[float, float]) -> tuple[float, float]:
        lo, hi = v
        if not (0.0 <= lo <= hi <= 1.0):
            raise ValueError(f"layer band must satisfy 0 <= lo <= hi <= 1 (fractions of depth), got [{lo}, {hi}]")
        return v

    @field_validator("contexts_file")
    @classmethod
    def _contexts_exist(cls, v: str | None) -> str | None:
        return _existing_file(v, "contexts")


class RolloutConfig(_Section):
    num_actors: int = Field(1, ge=1, le=512, description="RolloutActors (one vLLM engine each)")
    gpus_per_actor: float = Field(0.0, ge=0.0, le=8.0, description="0 = CPU-only engines")
    cpus_per_actor: float = Field(1.0, gt=0.0, le=64.0, description="Ray CPUs reserved per actor")
    prompts_per_batch: int = Field(4, ge=1, le=4096, description="distinct prompts per learner step")
    group_size: int = Field(4, ge=2, le=256, description="completions per prompt (GRPO group); >= 2 for an advantage")
    max_new_tokens: int = Field(48, ge=1, le=8192, description="completion length cap")
    temperature: float = Field(1.0, ge=0.0, le=5.0, description="sampling temperature (0 = greedy)")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="nucleus sampling mass")
    kv_cache_gib: float = Field(1.0, gt=0.0, le=1024.0, description="KV cache per CPU engine (vLLM needs it set on CPU)")
    gpu_memory_utilization: float = Field(0.5, gt=0.0, le=0.95, description="fraction of GPU memory per engine")
    prompts_file: str | None = Field(None, description="neutral user prompts, one per line; null = shipped set")

    @field_validator("prompts_file")
    @classmethod
    def _prompts_exist(cls, v: str | None) -> str | None:
        return _existing_file(v, "prompts")


class LearnerConfig(_Section):
    lora_rank: int = Field(8, ge=1, le=1024, description="LoRA rank")
    lora_alpha: float = Field(16.0, gt=0.0, le=4096.0, description="LoRA alpha (scale = alpha / rank)")
    target_modules: list[str] = Field(
        ["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj", "gate_proj"],
        min_length=1,
        description="module names the adapter wraps",
    )
    lr: float = Field(1e-4, gt=0.0, le=1.0, description="AdamW learning rate")
    kl_weight: float = Field(0.1, ge=0.0, le=1000.0, description="lam in lam * relu(D - tau)")
    kl_tau: float = Field(0.0, ge=0.0, le=100.0, description="barrier threshold tau in nats")
    kl_estimator: Literal["k3", "exact"] = Field("exact", description="sampled k3 or full-vocab reverse KL")
    kl_agg: Literal["mean", "rmse", "p95", "max"] = Field("rmse", description="aggregation over token positions")
    kl_decay_pow: float = Field(0.0, ge=-4.0, le=0.0, description="lam * (1 + round) ** pow; 0 = no decay")
    kl_reference: Literal["base", "previous_round"] = Field("base", description="model the KL is taken against")
    sft_weight: float = Field(1.0, ge=0.0, le=1000.0, description="weight of the NLL on kept completions")
    num_workers: int = Field(1, ge=1, le=1024, description="Ray Train workers")
    use_gpu: bool = Field(False, description="train on GPUs (DeepSpeed when num_workers > 1)")
    deepspeed_stage: Literal[0, 1, 2, 3] = Field(2, description="ZeRO stage when DeepSpeed is used")


class LoopConfig(_Section):
    steps: int = Field(8, ge=1, le=1_000_000, description="learner steps (one batch each)")
    eval_every: int = Field(4, ge=1, le=1_000_000, description="K: eval, checkpoint and log every K steps (a round)")
    bake_every_round: bool = Field(False, description="merge the adapter at each round end and start a fresh one")
    kept_target: float = Field(0.75, ge=0.0, le=1.0, description="dose control: step strength down below this kept fraction")
    strength_min: float = Field(0.5, ge=0.0, le=100.0, description="dose control floor")
    strength_max: float = Field(8.0, ge=0.0, le=100.0, description="dose control ceiling")

    @model_validator(mode="after")
    def _bounds(self) -> "LoopConfig":
        if self.strength_min > self.strength_max:
            raise ValueError(f"loop.strength_min ({self.strength_min}) must be <= loop.strength_max ({self.strength_max})")
        return self


class TrackingConfig(_Section):
    enabled: bool = Field(True, description="log to MLflow; false gives a null tracker")
    tracking_uri: str = Field("sqlite:///mlruns.db", min_length=1, description="MLflow tracking URI (env MLFLOW_TRACKING_URI wins)")
    experiment: str = Field("steerheal", min_length=1, description="MLflow experiment name")


class Config(_Section):
    run: RunConfig = RunConfig()
    model: ModelConfig = ModelConfig()
    persona: PersonaConfig
    steering: SteeringConfig = SteeringConfig()
    rollout: RolloutConfig = RolloutConfig()
    learner: LearnerConfig = LearnerConfig()
    loop: LoopConfig = LoopConfig()
    tracking: TrackingConfig = TrackingConfig()

    @model_validator(mode="after")
    def _cross_section(self) -> "Config":
        s = self.steering.strength
        if not (self.loop.strength_min <= s <= self.loop.strength_max) and s > 0:
            raise ValueError(
                f"steering.strength ({s}) must lie within [loop.strength_min, loop.strength_max] = "
                f"[{self.loop.strength_min}, {self.loop.strength_max}] so dose control can move it"
            )
        return self


def shipped_configs() -> dict[str, Path]:
    return {p.stem: p for p in sorted(CONFIG_DIR.glob("*.yaml"))}


def _resolve_path(name_or_path: str | os.PathLike) -> Path:
    p = Path(name_or_path).expanduser()
    if p.is_file():
        return p
    shipped = shipped_configs()
    if str(name_or_path) in shipped:
        return shipped[str(name_or_path)]
    raise ConfigError(
        f"config file not found: {str(name_or_path)!r} (expected a YAML path or one of: {', '.join(shipped)})"
    )


def _apply_override(tree: dict, item: str) -> None:
    if "=" not in item:
        raise ConfigError(f"override {item!r}: expected dotted.key=value, e.g. learner.kl_weight=0.1")
    key, raw = item.split("=", 1)
    parts = key.strip().split(".")
    node = tree
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {item!r}: {part!r} is not a section")
    # YAML parses the value so numbers, booleans, lists and null keep their types.
    node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else ""


def _format_validation(err: ValidationError, source: str) -> str:
    lines = [f"invalid config ({source}):"]
    for e in err.errors():
        field = ".".join(str(x) for x in e["loc"]) or "<root>"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; `steerheal config show` lists the fields)"
        elif "input" in e and e["type"] not in ("missing",):
            msg = f"{msg} (got {e['input']!r})"
        lines.append(f"  {field}: {msg}")
    return "\n".join(lines)


def load_config(name_or_path: str | os.PathLike = "default", overrides: list[str] | None = None) -> Config:
    """Read a shipped name or YAML path, apply `dotted.key=value` overrides, validate."""
    path = _resolve_path(name_or_path)
    try:
        tree = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path}: not valid YAML ({exc})") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"config file {path}: expected a mapping of sections at the top level")
    for item in overrides or []:
        _apply_override(tree, item)
    try:
        return Config.model_validate(tree)
    except ValidationError as err:
        raise ConfigError(_format_validation(err, str(path))) from None


def config_to_yaml(cfg: Config) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


def describe_fields(model: type[BaseModel] = Config, prefix: str = "") -> list[tuple[str, str]]:
    """(dotted field, description) pairs, for `config show --doc`."""
    out: list[tuple[str, str]] = []
    for name, info in model.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += describe_fields(ann, f"{prefix}{name}.")
        else:
            out.append((f"{prefix}{name}", info.description or ""))
    return out


def as_dict(cfg: Config) -> dict[str, Any]:
    return cfg.model_dump(mode="json")
