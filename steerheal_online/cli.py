"""`steerheal` command line: run, config show, doctor (more commands join per capability).

Every command takes `--config NAME|PATH` and repeated `--set dotted.key=value`; input is
validated before anything heavy starts, and a user error prints one clear message and
exits with status 2.
"""

from __future__ import annotations

import sys
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from steerheal_online.cli_common import ConfigOpt, SetOpt, load_cfg
from steerheal_online.cli_steer import steer_app
from steerheal_online.errors import SteerhealError

app = typer.Typer(help="Distil an activation-steering vector into a coherent LoRA adapter.", no_args_is_help=True)
config_app = typer.Typer(help="Inspect configs.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(steer_app, name="steer")
console = Console()


@config_app.command("show")
def config_show(
    config: str = ConfigOpt,
    overrides: Optional[list[str]] = SetOpt,
    doc: bool = typer.Option(False, "--doc", help="list every field with its one-line description"),
) -> None:
    """Print the resolved config (after overrides) as YAML."""
    from steerheal_online.config import config_to_yaml, describe_fields

    cfg = load_cfg(config, overrides)
    if doc:
        table = Table("field", "value", "what it is")
        flat = cfg.model_dump(mode="json")
        for field, text in describe_fields():
            section, name = field.split(".", 1)
            table.add_row(field, str(flat[section][name]), text)
        console.print(table)
    else:
        typer.echo(config_to_yaml(cfg), nl=False)


@app.command()
def doctor() -> None:
    """Report library versions, the device, and whether the embedded model is cached."""
    from steerheal_online.doctor import report

    table = Table("item", "value", "healthy")
    for item, value, healthy in report():
        table.add_row(item, value, healthy)
    console.print(table)


@app.command()
def run(
    config: str = ConfigOpt,
    overrides: Optional[list[str]] = SetOpt,
    num_prompts: int = typer.Option(6, "--num-prompts", min=1, help="prompts for the generation pass"),
) -> None:
    """Run the main job on a config (the embedded default unless --config says otherwise)."""
    from steerheal_online.pipeline import run_pipeline

    cfg = load_cfg(config, overrides)
    run_pipeline(cfg, num_prompts=num_prompts, console=console)


def main() -> None:
    """Entry point: click handles usage errors and --help (exit 2 / 0); our user errors
    become one line on stderr and exit status 2, not a traceback."""
    try:
        app()
    except SteerhealError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
