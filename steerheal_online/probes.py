"""Forced-choice trait probe, scored from answer likelihoods (works for any persona pair).

Each item is a question with an answer that expresses the trait and one that expresses
its opposite. For a model (optionally steered) the item's log-odds of the two-way
forced choice is

    logodds = log p(trait answer | question) - log p(opposite answer | question)   [nats]

summed over answer tokens, read as the assistant's reply under the chat template. The
probe's trait score is the mean over items. Answers are written to be near equal in
length, and what the product reports is always a *shift* against the base model, so the
base value's length bias cancels. The same forward pass gives a coherence gauge: the
mean per-token NLL of these fluent answers, which rises when steering breaks the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from steerheal_online.generation import chat_ids, pad_batch


@dataclass
class ProbeScore:
    trait_nats: float  # mean log-odds(trait vs opposite), nats
    answer_nll: float  # mean per-token NLL of both answers, nats/token (coherence gauge)
    per_item: list[float]  # log-odds per item


def _answer_batch(tok, items: list[dict], system: str | None):
    """(input ids, answer-token mask) for every (item, answer) pair, right-padded."""
    rows, spans = [], []
    for it in items:
        prompt = chat_ids(tok, it["question"], system)
        for key in ("trait", "opposite"):
            ans = tok(it[key], add_special_tokens=False)["input_ids"]
            rows.append(prompt + ans)
            spans.append((len(prompt), len(prompt) + len(ans)))
    ids, attn = pad_batch(tok, rows)
    mask = torch.zeros_like(ids, dtype=torch.bool)
    for n, (a, b) in enumerate(spans):
        mask[n, a:b] = True
    return ids, attn, mask


@torch.no_grad()
def score_probes(model, tok, items: list[dict], system: str | None = None, batch_items: int = 16) -> ProbeScore:
    """Trait log-odds and answer NLL for the model as it is now (hooks included)."""
    logodds, nll_sum, n_tok = [], 0.0, 0
    for start in range(0, len(items), batch_items):
        chunk = items[start : start + batch_items]
        ids, attn, mask = _answer_batch(tok, chunk, system)
        logp = torch.log_softmax(model(input_ids=ids, attention_mask=attn).logits[:, :-1].float(), -1)  # (B, T-1, V)
        tgt_logp = logp.gather(-1, ids[:, 1:, None])[..., 0]  # (B, T-1): log p(token t+1 | <= t)
        m = mask[:, 1:]
        seq = (tgt_logp * m).sum(-1)  # (B,) answer log-likelihood
        logodds += (seq[0::2] - seq[1::2]).tolist()  # rows alternate trait, opposite
        nll_sum += float(-(tgt_logp * m).sum())
        n_tok += int(m.sum())
    return ProbeScore(sum(logodds) / len(logodds), nll_sum / max(n_tok, 1), logodds)


@torch.no_grad()
def completion_nll(model, tok, head: list[int], completions: list[list[int]]) -> list[torch.Tensor]:
    """Per-token NLL (nats) of each completion after the prompt ids `head` (chat_ids output)."""
    ids, attn = pad_batch(tok, [head + c for c in completions])
    logp = torch.log_softmax(model(input_ids=ids, attention_mask=attn).logits[:, :-1].float(), -1)  # (B, T-1, V)
    tgt = logp.gather(-1, ids[:, 1:, None])[..., 0]  # (B, T-1)
    return [-tgt[n, len(head) - 1 : len(head) - 1 + len(c)] for n, c in enumerate(completions)]


def persona_logratio(model, tok, prompt: str, completions: list[list[int]], pos: str, neg: str) -> list[float]:
    """Trait of free text in nats/token: mean log p(c | pos persona) - log p(c | neg persona), base model.

    Positive when the completion reads more like the pos persona wrote it. Works for any
    persona pair, needs no word list, and reads the text the steered model actually wrote.
    """
    nll_pos = completion_nll(model, tok, chat_ids(tok, prompt, pos), completions)
    nll_neg = completion_nll(model, tok, chat_ids(tok, prompt, neg), completions)
    return [float((b - a).mean()) if len(a) else 0.0 for a, b in zip(nll_pos, nll_neg)]
