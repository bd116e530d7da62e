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
        width = max(len(p) for p in chunk)
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in chunk])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in chunk])
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
