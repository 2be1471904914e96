"""Tokenising and left padding: the one place a batch's ids, attention mask and positions are built."""

from __future__ import annotations

from typing import Iterator, Sequence

import torch
from transformers import PreTrainedTokenizerBase

from bench.model.chat import has_chat_template


def left_pad(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ids, mask)``, both ``len(seqs) x longest``, each sequence right-aligned (empty ones all pad)."""
    width = max((len(s) for s in seqs), default=0)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        if seq:
            ids[row, width - len(seq):] = torch.tensor(list(seq))
            mask[row, width - len(seq):] = 1
    return ids, mask


def encode(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]) -> list[list[int]]:
    # A rendered chat template already carries its special tokens; plain text gets the usual ones.
    return tokenizer(list(texts), add_special_tokens=not has_chat_template(tokenizer))["input_ids"]


def left_padded_batches(
    token_ids: list[list[int]], batch_size: int, pad_id: int, device: torch.device, sort: bool = True
) -> Iterator[tuple[list[int], dict[str, torch.Tensor]]]:
    """Left-padded batches (length-sorted unless ``sort=False``); yields (original indices, model inputs)."""
    order = list(range(len(token_ids)))
    if sort:  # similar lengths together: less padding
        order.sort(key=lambda i: (len(token_ids[i]), i))
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        ids, mask = left_pad([token_ids[i] for i in idx], pad_id)
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        yield idx, {
            "input_ids": ids.to(device),
            "attention_mask": mask.to(device),
            "position_ids": position_ids.to(device),
        }


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device
