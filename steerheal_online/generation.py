"""Chat formatting and batched transformers generation, shared by every backend.

Both backends are fed the *same token ids* (built here with the tokenizer's chat
template), so HF and vLLM outputs can be compared token for token.
"""

from __future__ import annotations

from dataclasses import dataclass


def chat_ids(tok, user: str, system: str | None = None) -> list[int]:
    """Token ids of a chat prompt ending at the assistant header (the read/steer point)."""
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
    ids = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    if isinstance(ids, dict) or hasattr(ids, "input_ids"):  # transformers 5 may return a BatchEncoding
        ids = ids["input_ids"]
    return list(ids)


def pad_batch(tok, rows: list[list[int]], left: bool = False):
    """(ids, attention mask) for token rows padded to one width: (B, T) each.

    Left padding puts every row's last token at -1 (generation, last-token reads);
    right padding keeps positions aligned at the start (scoring completions).
    """
    import torch

    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    width = max(map(len, rows))
    fill = [[pad] * (width - len(r)) for r in rows]
    ones = [[1] * len(r) for r in rows]
    zeros = [[0] * (width - len(r)) for r in rows]
    if left:
        return torch.tensor([f + r for f, r in zip(fill, rows)]), torch.tensor([z + o for z, o in zip(zeros, ones)])
    return torch.tensor([r + f for f, r in zip(fill, rows)]), torch.tensor([o + z for z, o in zip(zeros, ones)])


@dataclass
class Completion:
    prompt_ids: list[int]
    token_ids: list[int]
    text: str
    finish_reason: str  # "stop" (EOS) | "length"


def hf_generate(model, tok, prompt_ids: list[list[int]], max_new_tokens: int, batch_size: int = 16,
                ignore_eos: bool = False) -> list[Completion]:
    """Greedy generation, left-padded batches; stops at EOS like vLLM does (unless `ignore_eos`)."""
    import torch

    eos = tok.eos_token_id
    pad = tok.pad_token_id if tok.pad_token_id is not None else eos
    out: list[Completion] = []
    for start in range(0, len(prompt_ids), batch_size):
        chunk = prompt_ids[start : start + batch_size]
        ids, mask = pad_batch(tok, chunk, left=True)
        width = ids.shape[1]
        with torch.no_grad():
            gen = model.generate(
                input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                eos_token_id=eos, pad_token_id=pad, top_p=None, top_k=None, temperature=None,
                min_new_tokens=max_new_tokens if ignore_eos else None,
            )
        for p, row in zip(chunk, gen[:, width:].tolist()):
            toks = row if ignore_eos else (row[: row.index(eos) + 1] if eos in row else row)
            finish = "stop" if toks and toks[-1] == eos else "length"
            text = tok.decode(toks, skip_special_tokens=True)
            out.append(Completion(p, toks, text, finish))
    return out
