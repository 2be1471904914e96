"""Contrastive, reversible training of InnerPiSSA adapters on the honesty pairs.

Per batch of pairs (interleaved honest, dishonest):
- reference hidden states at the measurement layer from the *adapted* model at c=0;
- per-sample reference direction ``d_i = normalise(mean_t (h_cho - h_rej)_i @ U_m)`` over the last
  few tokens, in the measurement layer's left singular basis ``U_m`` (or one dataset-level direction);
- separation ``delta(c) = mean_i (mean_t (h_cho(c) - h_rej(c))_i @ U_m) . d_i``;
- for c in {-m, +m} (m = 1, or drawn per batch from ``coeff_range`` so that training sees the strengths
  that matched evaluation uses): the steering term rewards ``sign(c) * (delta(c) - delta(0)) / |delta(0)|``
  (``margin`` loss: linear reward bounded by the coherence term; ``dpo`` loss: ``-logsigmoid(beta * ...)``,
  bounded by itself), and the coherence term keeps the pair tokens' NLL near the c=0 NLL. By default it is
  a per-token trust region, ``weight * mean_tokens relu(dNLL_token - margin)^2`` (``token``; ``token2``: on
  ``|dNLL_token|``, two-sided), so no token can leave it while the others hold the mean inside: the journal
  (2025-10-07) saw the adapter game a mean-token margin "by breaking specific answer tokens". ``mean``,
  ``relu(mean dNLL - margin)^2``, is the earlier form, kept for comparison.
"""

from __future__ import annotations

import contextlib
import logging
import random
from dataclasses import dataclass
from typing import ContextManager

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from bench.api.pairs import HonestyPair
from bench.model.layers import decoder_layers, lowest_layer
from bench.model.loading import LoadedModel
from bench.model.padding import encode, left_padded_batches, model_device
from bench.model.replay import Recording
from methods.innerpissa.model import InnerPiSSAAdapters

log = logging.getLogger(__name__)


@dataclass
class TrainSettings:
    lr: float = 5e-3
    epochs: int = 2
    batch_pairs: int = 8
    loss: str = "dpo"  # dpo | margin
    beta: float = 1.0  # dpo temperature
    coherence_margin: float = 0.2  # nats per token allowed above the c=0 NLL before the penalty starts
    coherence_weight: float = 100.0
    loss_tokens: int = 4  # last tokens of each prompt used for the separation
    nll_tokens: int = 8  # last tokens of each prompt used for the coherence NLL
    sample_wise_direction: bool = True  # False: one dataset-level direction (first PC of the diffs)
    grad_clip: float = 1.0
    coherence: str = "token"  # token | token2 (two-sided) | mean (the mean-margin form)
    coeff_range: tuple[float, float] = (1.0, 1.0)  # |c| per batch, uniform in [lo, hi]


def coherence_penalty(dnll: torch.Tensor, margin: float, weight: float, mode: str) -> tuple[torch.Tensor, float]:
    """(penalty, share of tokens outside the margin) of per-token NLL changes ``dnll`` [sequences, tokens]."""
    if mode == "mean":
        excess = dnll.mean() - margin
        return weight * F.relu(excess) ** 2, float((dnll.mean(-1) > margin).float().mean())
    size = dnll.abs() if mode == "token2" else dnll
    return weight * (F.relu(size - margin) ** 2).mean(), float((size > margin).float().mean())


def _maybe(context, recording: Recording | None, **kwargs) -> ContextManager[None]:
    return context(recording, **kwargs) if recording is not None else contextlib.nullcontext()


def measurement_basis(loaded: LoadedModel, layer: int, rank: int) -> torch.Tensor:
    """Top left singular vectors of the measurement layer's output projection (d_model x rank)."""
    block = decoder_layers(loaded.model)[layer]
    weight = None
    for name, module in block.named_modules():
        if name.endswith("down_proj") and isinstance(module, torch.nn.Linear):
            weight = module.weight
    if weight is None:
        raise ValueError(f"layer {layer} has no down_proj to take the measurement basis from")
    u, _, _ = torch.linalg.svd(weight.detach().float(), full_matrices=False)
    return u[:, :rank]


def _forward(model, batch, layer: int, nll_tokens: int):
    """Hidden states of decoder ``layer`` (all positions) and the per-token NLL of the last tokens."""
    out = model(**batch, output_hidden_states=True, use_cache=False, logits_to_keep=nll_tokens + 1)
    hidden = out.hidden_states[layer + 1].float()
    logp = torch.log_softmax(out.logits[:, :-1].float(), dim=-1)
    target = batch["input_ids"][:, -nll_tokens:]
    return hidden, -logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)


def _pair_diffs(hidden: torch.Tensor, basis: torch.Tensor, k: int) -> torch.Tensor:
    """mean over the last k tokens of (h_cho - h_rej) @ U_m, per pair -> [pairs, rank]."""
    proj = hidden[:, -k:] @ basis
    return (proj[0::2] - proj[1::2]).mean(1)


def dataset_direction(loaded, adapters, pairs, basis, layer, settings, batches) -> torch.Tensor:
    diffs = []
    with torch.no_grad(), adapters.coefficient(0.0):
        for batch in batches:
            hidden, _ = _forward(loaded.model, batch, layer, settings.nll_tokens)
            diffs.append(_pair_diffs(hidden, basis, settings.loss_tokens))
    d = torch.cat(diffs)
    # first principal component, signed to agree with the mean difference
    _, _, vh = torch.linalg.svd(d - d.mean(0), full_matrices=False)
    pc = vh[0]
    return pc * torch.sign(pc @ d.mean(0))


def train(loaded: LoadedModel, adapters: InnerPiSSAAdapters, pairs: list[HonestyPair], measure_layer: int,
          basis: torch.Tensor, settings: TrainSettings, seed: int) -> list[dict]:
    """Train in place; return the per-step log (both loss terms, separations, NLLs)."""
    tok, model = loaded.tokenizer, loaded.model
    device = model_device(model)
    order = list(range(len(pairs)))
    batches_per_epoch = -(-len(pairs) // settings.batch_pairs)
    opt = torch.optim.AdamW(adapters.trainable(), lr=settings.lr, weight_decay=0.0)
    total = settings.epochs * batches_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=settings.lr, total_steps=total, pct_start=0.1)
    basis = basis.to(device)
    rng = random.Random(seed)
    torch.manual_seed(seed)
    history: list[dict] = []

    def make_batches(indices):
        for start in range(0, len(indices), settings.batch_pairs):
            chunk = [pairs[i] for i in indices[start : start + settings.batch_pairs]]
            texts = [t for p in chunk for t in (p.positive, p.negative)]  # interleaved cho, rej
            ids = encode(tok, texts)
            # one batch holding all texts: keep the interleaved order (left_padded_batches sorts by length)
            _, batch = next(left_padded_batches(ids, len(ids), tok.pad_token_id, device, sort=False))
            yield batch

    first = lowest_layer(adapters.targets)
    global_dir = None
    if not settings.sample_wise_direction:
        global_dir = dataset_direction(loaded, adapters, pairs, basis, measure_layer, settings, make_batches(order))

    with adapters.attached(model):
        model.train(False)
        bar = tqdm(total=total, desc="innerpissa training", unit="step")
        for epoch in range(settings.epochs):
            rng.shuffle(order)
            for batch in make_batches(order):
                # The adapters start at layer `first`: the c=0 pass records what enters it, and the c=+-1 passes
                # replay that instead of recomputing the layers below (the same numbers; bench.model.replay).
                below = Recording(first) if first and loaded.replay.enabled else None
                with torch.no_grad(), adapters.coefficient(0.0), _maybe(loaded.replay.record, below, full_pass=True):
                    h0, nll0 = _forward(model, batch, measure_layer, settings.nll_tokens)
                diff0 = _pair_diffs(h0, basis, settings.loss_tokens)
                if global_dir is None:
                    d = F.normalize(diff0, dim=-1)
                else:
                    d = F.normalize(global_dir, dim=-1).expand_as(diff0)
                delta0 = (diff0 * d).sum(-1).mean()
                scale = delta0.abs().clamp(min=1e-6)
                loss, step = 0.0, {"epoch": epoch}
                magnitude = rng.uniform(*settings.coeff_range)
                step["magnitude"] = magnitude
                for c in (-magnitude, magnitude):
                    with adapters.coefficient(c), _maybe(loaded.replay.replay, below):
                        h, nll = _forward(model, batch, measure_layer, settings.nll_tokens)
                    delta = (_pair_diffs(h, basis, settings.loss_tokens) * d).sum(-1).mean()
                    gain = (1.0 if c > 0 else -1.0) * (delta - delta0) / scale
                    if settings.loss == "dpo":
                        steer = -F.logsigmoid(settings.beta * gain)
                    else:
                        steer = -gain
                    coherence, outside = coherence_penalty(nll - nll0, settings.coherence_margin,
                                                           settings.coherence_weight, settings.coherence)
                    loss = loss + steer + coherence
                    tag = "plus" if c > 0 else "minus"
                    step.update({f"sep_{tag}": delta.item(), f"steer_{tag}": steer.item(),
                                 f"coh_{tag}": coherence.item(), f"dnll_{tag}": (nll - nll0).mean().item(),
                                 f"outside_{tag}": outside})
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(adapters.trainable(), settings.grad_clip)
                opt.step()
                sched.step()
                step.update(loss=loss.item(), sep_ref=delta0.item(), lr=sched.get_last_lr()[0])
                history.append(step)
                bar.set_postfix(loss=f"{step['loss']:.3f}", sep=f"{step['sep_plus']:.2f}/{step['sep_minus']:.2f}")
                bar.update()
        bar.close()
    return history
