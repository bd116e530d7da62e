"""Options every `steerheal` command shares, and config loading for them."""

from __future__ import annotations

from typing import Optional

import typer

ConfigOpt = typer.Option("default", "--config", "-c", help="shipped config name (default, authority_4b) or a YAML path")
SetOpt = typer.Option(None, "--set", "-s", help="override a field, e.g. --set learner.kl_weight=0.1 (repeatable)")


def load_cfg(config: str, overrides: Optional[list[str]]):
    from steerheal_online.config import load_config

    return load_config(config, overrides or [])
