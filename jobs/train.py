"""Ray job entry point for the main run: parses arguments, calls the package, nothing else.

    ray job submit --working-dir . -- python jobs/train.py --config default --set run.name=x

Joins the cluster it was submitted to (`ray.init()` only if Ray is not already
initialised, address from RAY_ADDRESS), so the driver itself stays light on the head
node. Until the online loop lands, the job runs `steerheal run`'s pipeline.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="steerheal-online main job")
    ap.add_argument("--config", default="default", help="shipped config name or YAML path")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="dotted.key=value (repeatable)")
    ap.add_argument("--num-prompts", type=int, default=6)
    args = ap.parse_args(argv)

    from steerheal_online.config import load_config
    from steerheal_online.errors import SteerhealError
    from steerheal_online.pipeline import run_pipeline

    try:
        cfg = load_config(args.config, args.overrides)  # validated before Ray or any model starts
    except SteerhealError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    run_pipeline(cfg, num_prompts=args.num_prompts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
