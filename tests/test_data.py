"""Shipped text sets are big and clean enough; bad user files are refused naming file and line."""

from __future__ import annotations

import pytest

from steerheal_online.data import load_contexts, load_probes, load_prompts
from steerheal_online.errors import SteerhealError


def test_shipped_sets_are_large_distinct_and_disjoint():
    contexts, prompts = load_contexts(), load_prompts()
    assert len(contexts) >= 200 and len(set(contexts)) == len(contexts)
    assert len(prompts) >= 96 and len(set(prompts)) == len(prompts)
    assert not set(contexts) & set(prompts)  # extraction never sees a rollout prompt
    for name in ("probes_cheerful.jsonl", "probes_care_authority.jsonl"):
        items = load_probes(None, name)
        assert len(items) >= 32
        assert all(it["trait"] != it["opposite"] for it in items)


def test_bad_user_files_name_the_file_and_line(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    with pytest.raises(SteerhealError, match=r"empty.txt: expected at least 1 non-empty lines, found 0"):
        load_prompts(empty)
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(SteerhealError, match="bin.txt: not UTF-8"):
        load_contexts(binary)
    with pytest.raises(SteerhealError, match="missing.txt: file not found"):
        load_prompts(tmp_path / "missing.txt")
    probes = tmp_path / "p.jsonl"
    probes.write_text('{"question": "q", "trait": "a", "opposite": "b"}\n{"question": "q", "trait": "a"}\n')
    with pytest.raises(SteerhealError, match=r"p.jsonl:2: expected an object with non-empty string fields"):
        load_probes(probes)
    probes.write_text('{"question": "q", "trait": "a", "opposite": "b"}\nnot json\n')
    with pytest.raises(SteerhealError, match=r"p.jsonl:2: not valid JSON"):
        load_probes(probes)
    one = tmp_path / "one.txt"
    one.write_text("only one context\n")
    with pytest.raises(SteerhealError, match="at least 2"):
        load_contexts(one)
