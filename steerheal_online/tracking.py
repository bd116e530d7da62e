"""Experiment tracking: an MLflow run, or a null tracker with the same methods.

The loop calls `tracker.log_metrics(...)` unconditionally; with tracking off it is the
null object (nanochat's DummyWandb idea), so there is no `if tracking:` anywhere.
MLFLOW_TRACKING_URI in the environment wins over the config (clusters set it once).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from steerheal_online.config import Config


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


class NullTracker:
    run_id: str | None = None

    def log_params(self, params: dict[str, Any]) -> None: ...
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None: ...
    def log_artifact(self, path: str | Path) -> None: ...
    def set_tags(self, tags: dict[str, str]) -> None: ...
    def end(self, status: str = "FINISHED") -> None: ...


def tracking_uri(cfg: Config) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI", cfg.tracking.tracking_uri)


class MlflowTracker:
    """One MLflow run; `run_id` may resume an existing run (same run, not a new one)."""

    def __init__(self, cfg: Config, run_name: str | None = None, run_id: str | None = None, parent_run_id: str | None = None):
        from mlflow.tracking import MlflowClient

        uri = tracking_uri(cfg)
        self.client = MlflowClient(tracking_uri=uri)
        exp = self.client.get_experiment_by_name(cfg.tracking.experiment)
        if exp is None:
            exp_id = self.client.create_experiment(cfg.tracking.experiment, artifact_location=_artifact_root(uri, cfg))
        else:
            exp_id = exp.experiment_id
        if run_id:
            self.client.update_run(run_id, status="RUNNING")
            self.run_id = run_id
        else:
            tags = {"mlflow.runName": run_name or cfg.run.name}
            if parent_run_id:
                tags["mlflow.parentRunId"] = parent_run_id
            self.run_id = self.client.create_run(exp_id, tags=tags).info.run_id

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in flatten(params).items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i : i + 100])

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step or 0) for k, v in metrics.items() if v is not None]
        if items:
            self.client.log_batch(self.run_id, metrics=items)

    def log_artifact(self, path: str | Path) -> None:
        self.client.log_artifact(self.run_id, str(path))

    def set_tags(self, tags: dict[str, str]) -> None:
        for k, v in tags.items():
            self.client.set_tag(self.run_id, k, v)

    def end(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status=status)


def _artifact_root(uri: str, cfg: Config) -> str | None:
    # A sqlite store keeps artifacts beside the database file unless told otherwise.
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///")).expanduser().resolve()
        return (db.parent / "mlartifacts" / cfg.tracking.experiment).as_uri()
    return None


def make_tracker(cfg: Config, **kw) -> MlflowTracker | NullTracker:
    return MlflowTracker(cfg, **kw) if cfg.tracking.enabled else NullTracker()
