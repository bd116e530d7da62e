"""Read the text sets the product runs on: shipped ones by name, users' by path.

Line files (contexts, prompts): one item per line, UTF-8, blank lines ignored.
Probe files (JSONL): {"question", "trait", "opposite"} per line.
Every reader names the file and the line of a bad item, before any heavy work.
"""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

from steerheal_online.errors import SteerhealError

SHIPPED = files("steerheal_online") / "data"
PROBE_KEYS = ("question", "trait", "opposite")


def _read(path: str | Path | None, default: str) -> tuple[str, str]:
    if path is None:
        return str(SHIPPED / default), (SHIPPED / default).read_text(encoding="utf-8")
    p = Path(path).expanduser()
    if not p.is_file():
        raise SteerhealError(f"{p}: file not found")
    try:
        return str(p), p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SteerhealError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def load_lines(path: str | Path | None, default: str, min_items: int = 1) -> list[str]:
    """Non-blank lines of a user file, or of the shipped file `default`."""
    where, text = _read(path, default)
    items = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if len(items) < min_items:
        raise SteerhealError(f"{where}: expected at least {min_items} non-empty lines, found {len(items)}")
    return items


def load_prompts(path: str | Path | None = None, min_items: int = 1) -> list[str]:
    return load_lines(path, "prompts.txt", min_items)


def load_contexts(path: str | Path | None = None, min_items: int = 2) -> list[str]:
    return load_lines(path, "contexts.txt", min_items)


def load_probes(path: str | Path | None = None, default: str = "probes_cheerful.jsonl") -> list[dict[str, str]]:
    """Forced-choice probe items; each must have non-empty question, trait and opposite."""
    where, text = _read(path, default)
    items = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SteerhealError(f"{where}:{n}: not valid JSON ({exc.msg})") from None
        if not isinstance(item, dict) or any(not isinstance(item.get(k), str) or not item[k].strip() for k in PROBE_KEYS):
            raise SteerhealError(f"{where}:{n}: expected an object with non-empty string fields {', '.join(PROBE_KEYS)}")
        items.append({k: item[k] for k in PROBE_KEYS})
    if not items:
        raise SteerhealError(f"{where}: no probe items")
    return items
