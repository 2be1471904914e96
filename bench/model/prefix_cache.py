"""Shared-prefix evaluation: each prompt token is run through the model once per (method, coefficient).

A DailyDilemmas prompt is three nested pieces: the *trunk* shared by every row (chat template, system
prompt, instruction), the *stem* shared by a dilemma's two actions (its situation), and the row's own
*leaf* (the action and the answer prefix). We run the trunk once, each stem once on top of the trunk's
KV cache, and each leaf on top of its stem's cache; only the leaf's last position reaches the LM head.

The pieces are cut on token ids (longest common prefixes of the tokenised prompts), so the tokens fed
to the model are exactly those of the plain path. Stems and leaves are left-padded *in the middle* of
the sequence: the attention mask hides the pads and explicit position ids continue from the real
prefix length, so every real token sees the same keys at the same positions as in the plain path.
Steering is applied on every forward here too (hooks and adapters act per token), which is why the
cache is rebuilt for each (method, coefficient) and never shared between them.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable, Hashable, Iterator, Sequence

import torch
from transformers import DynamicCache, PreTrainedModel

from bench.model.padding import left_pad

KV = list[tuple[torch.Tensor, torch.Tensor]]


def common_prefix_length(seqs: Sequence[Sequence[int]], start: int = 0) -> int:
    """Length of the longest common prefix of ``seqs`` (all share ``seqs[i][:start]`` already)."""
    n = start
    shortest = min(len(s) for s in seqs)
    while n < shortest and all(s[n] == seqs[0][n] for s in seqs[1:]):
        n += 1
    return n


@dataclass
class PrefixPlan:
    """How the prompts split into trunk, per-group stems and per-row leaves (all token ids)."""

    trunk: list[int]
    groups: list[list[int]]  # row indices of each group, groups sorted by stem length
    stems: list[list[int]]
    leaves: list[list[int]]  # indexed by row

    @classmethod
    def build(cls, token_ids: Sequence[Sequence[int]], group_keys: Sequence[Hashable]) -> "PrefixPlan":
        # Every row keeps at least one token of its own: its last position gives the answer logits.
        trunk_len = min(common_prefix_length(token_ids), min(len(t) for t in token_ids) - 1)
        by_key: dict[Hashable, list[int]] = {}
        for i, key in enumerate(group_keys):
            by_key.setdefault(key, []).append(i)
        groups, stems = [], []
        leaves: list[list[int]] = [[] for _ in token_ids]
        for rows in by_key.values():
            members = [token_ids[i] for i in rows]
            stem_end = min(common_prefix_length(members, trunk_len), min(len(m) for m in members) - 1)
            groups.append(rows)
            stems.append(list(token_ids[rows[0]][trunk_len:stem_end]))
            for i in rows:
                leaves[i] = list(token_ids[i][stem_end:])
        order = sorted(range(len(groups)), key=lambda g: (len(stems[g]), groups[g][0]))
        return cls(list(token_ids[0][:trunk_len]), [groups[g] for g in order], [stems[g] for g in order], leaves)

    def max_padded_length(self) -> int:
        """An upper bound on any sequence this plan's batches build (trunk + padded stem + padded leaf)."""
        return len(self.trunk) + max(map(len, self.stems), default=0) + max(map(len, self.leaves), default=0)

    def unique_tokens(self) -> int:
        return len(self.trunk) + sum(map(len, self.stems)) + sum(map(len, self.leaves))


def _kv(output) -> KV:
    cache = getattr(output, "cache", None) or output.past_key_values  # renamed in transformers 5.x
    return [(layer.keys, layer.values) for layer in cache.layers]


def _cache_kwarg(model: PreTrainedModel) -> str:
    """transformers 5 renames ``past_key_values`` to ``cache``; use whichever this model's forward takes."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(type(base).forward).parameters else "past_key_values"


def _cache(kv: KV, rows: torch.Tensor | None, config) -> DynamicCache:
    """A fresh cache holding ``kv`` (selected/expanded to ``rows``); forward passes grow caches in place."""
    data = [(k[rows], v[rows]) if rows is not None else (k, v) for k, v in kv]
    return DynamicCache(ddp_cache_data=data, config=config)


def supports_prefix_cache(model: PreTrainedModel, plan: PrefixPlan | None = None) -> bool:
    """Full-attention decoders always. Sliding-window layers (Gemma3) only when no padded sequence of
    ``plan`` reaches the window: then a sliding layer attends to exactly what a full one does and its
    cache drops nothing, so the pieces extend as in the plain path. Recurrent or other caches: never."""
    text_config = model.config.get_text_config(decoder=True)
    layer_types = set(getattr(text_config, "layer_types", None) or [])
    if not layer_types <= {"full_attention", "sliding_attention"}:
        return False
    if "sliding_attention" not in layer_types:
        return True
    window = getattr(text_config, "sliding_window", None)
    return plan is not None and window is not None and plan.max_padded_length() < window


def prefix_cached_last_logits(
    model: PreTrainedModel,
    plan: PrefixPlan,
    batch_size: int,
    pad_id: int,
    device: torch.device,
    on_forward: Callable[[], None] | None = None,
    shard: tuple[int, int] = (0, 1),
) -> Iterator[tuple[list[int], torch.Tensor]]:
    """Yield (row indices, next-token logits at each row's last token), batch by batch; with
    ``shard = (rank, world)`` only every world-th batch (each process still runs the short trunk)."""

    cache_kwarg = _cache_kwarg(model)

    def forward(past: DynamicCache | None = None, **kw):
        out = model(**kw, **{cache_kwarg: past}, logits_to_keep=1, use_cache=True)
        if on_forward:
            on_forward()
        return out

    config = model.config
    trunk_len = len(plan.trunk)
    trunk_kv: KV | None = None
    if trunk_len:
        ids = torch.tensor([plan.trunk], device=device)
        out = forward(input_ids=ids, attention_mask=torch.ones_like(ids),
                      position_ids=torch.arange(trunk_len, device=device)[None])
        trunk_kv = _kv(out)

    # Batches of whole groups: batch_size stems, and at most 2 x batch_size leaves. A row's leaf is a
    # few tokens (an action), so that is still far fewer tokens than batch_size full prompts.
    batches: list[list[int]] = [[]]
    for g, rows in enumerate(plan.groups):
        n_rows = sum(len(plan.groups[x]) for x in batches[-1]) + len(rows)
        if batches[-1] and (len(batches[-1]) >= batch_size or n_rows > 2 * batch_size):
            batches.append([])
        batches[-1].append(g)

    rank, world = shard
    for group_batch in batches[rank::world]:
        n_groups = len(group_batch)
        stems = [plan.stems[g] for g in group_batch]
        stem_ids, stem_mask = left_pad(stems, pad_id)
        stem_lens = torch.tensor([len(s) for s in stems])
        prefix_mask = torch.cat([torch.ones((n_groups, trunk_len), dtype=torch.long), stem_mask], dim=1)
        if stem_ids.shape[1]:
            past = _cache(trunk_kv, torch.zeros(n_groups, dtype=torch.long), config) if trunk_kv else None
            positions = trunk_len + (stem_mask.cumsum(-1) - 1).clamp(min=0)
            out = forward(input_ids=stem_ids.to(device), attention_mask=prefix_mask.to(device),
                          position_ids=positions.to(device), past=past)
            stem_kv = _kv(out)
        else:
            stem_kv = [(k.expand(n_groups, *k.shape[1:]), v.expand(n_groups, *v.shape[1:])) for k, v in trunk_kv or []]

        rows = [i for g in group_batch for i in plan.groups[g]]
        owner = torch.tensor([j for j, g in enumerate(group_batch) for _ in plan.groups[g]])
        leaf_ids, leaf_mask = left_pad([plan.leaves[i] for i in rows], pad_id)
        mask = torch.cat([prefix_mask[owner], leaf_mask], dim=1)
        positions = trunk_len + stem_lens[owner, None] + (leaf_mask.cumsum(-1) - 1).clamp(min=0)
        past = _cache(stem_kv, owner.to(device), config) if stem_kv else None
        out = forward(input_ids=leaf_ids.to(device), attention_mask=mask.to(device),
                      position_ids=positions.to(device), past=past)
        yield rows, out.logits[:, -1]
