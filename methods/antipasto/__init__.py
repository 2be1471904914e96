"""AntiPaSTO, the published successor of InnerPiSSA (M. J. Clark, "Self-Supervised Steering of Moral
Reasoning", arXiv 2601.07473, 2026), built from its published description (SPEC.md, "AntiPaSTO").

It reuses InnerPiSSA's SVD adapter (``methods.innerpissa``: ``y = x V R(a) diag(S + a delta_s) U^T + x W_res^T``,
Cayley ``R``, a skew generator soft-clamped to ``2 tan(pi/8)``, so the rotation angle is at most pi/4) on the
residual writers (o_proj, down_proj) of layers [0.1 L, loss layer), and trains it with three passes per
batch (a = 0 without grad, +1, -1) on hidden states after the loss layer, averaged over the last 3 tokens
and projected onto a k-dimensional loss subspace:
- separation: ``c_pm = cos(delta_pm, d_ref)``, ``u = 30 c_+ c_-``, ``L_proj = u + relu(u)^2`` (the two ends
  move antiparallel along the reference difference); ``--antipasto.separation linear`` is the ordered
  alternative ``(c_- - c_+) / 2``;
- coherence: a per-token barrier on the total variation from the reference next-token distribution,
  above ``0.9 sqrt(H_ref + 0.02)``: ``log(1 + s v)^2 + v``, s = 10 ramped from 0 over the first 20% of steps;
- ordering: the change of ``log p(cho) - log p(rej)`` must exceed ``tau`` at +1 and stay below ``-tau`` at -1
  (or the mirror image, whichever is closer), weight 30, ramped likewise.
The loss subspace is the published *centred* PCA of the unit-normalised pair differences (their mean removed;
``--antipasto.no-centred``: the uncentred basis, whose first component is the shared direction, an ablation),
and each cosine is weighted by the focus ``f^(1 - s)``, f the share of the change that lies in the subspace,
s ramped 1 -> 0.25. Every ramp reaches full weight at 20% of the optimiser steps (``LossSchedule``).
Simplifications, stated: the adapter keeps the top-r singular directions by S (published: by how strongly
the pairs use them); the subspace is not intersected with further ones; the pairs are the benchmark's
shared honesty pairs (published: ~650 of its own); on a CPU the default is fewer steps (docs/methods.md).
The sign is calibrated on the training pairs like every other method's, never on DailyDilemmas.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import random
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from bench.api.steering import FitContext, Steering, SteeringMethod, option
from bench.errors import SteerbenchError, at_least, names_list, one_of, positive
from bench.model.layers import find_linear_targets
from bench.model.padding import encode, left_padded_batches, model_device
from methods.antipasto.loss import (
    MAX_ANGLE,
    LossSchedule,
    fisher_scale,
    focus,
    loss_subspace,
    ordering_loss,
    ramp,
    separation_loss,
    tv_barrier,
)
from methods.innerpissa import InnerPiSSASteering, load_adapter_steering
from methods.innerpissa.layer import AdapterShape
from methods.innerpissa.model import InnerPiSSAAdapters

log = logging.getLogger(__name__)
__all__ = ["AntiPaSTO", "LossSchedule", "MAX_ANGLE", "fisher_scale", "focus", "loss_subspace", "ordering_loss", "ramp",
           "separation_loss", "tv_barrier"]


@dataclass
class Batch:
    inputs: dict  # interleaved cho, rej
    tokens: int  # suffix tokens every sequence of the batch ends with


def _batches(ctx: FitContext, pairs, size: int, order: list[int]):
    tok, device = ctx.loaded.tokenizer, model_device(ctx.loaded.model)
    for start in range(0, len(order), size):
        chunk = [pairs[i] for i in order[start:start + size]]
        texts = [t for p in chunk for t in (p.positive, p.negative)]
        ids = encode(tok, texts)
        heads = encode(tok, [t[: len(t) - len(p.suffix)] for p in chunk for t in (p.positive, p.negative)])
        tokens = max(1, min(len(i) - len(h) for i, h in zip(ids, heads)))
        _, inputs = next(left_padded_batches(ids, len(ids), tok.pad_token_id, device, sort=False))
        yield Batch(inputs, tokens)


def _pass(model, batch: Batch, layer: int):
    """(hidden states after ``layer``, mean of the last 3 tokens [seqs, d], logits at the last tokens+1
    positions, mean log p of the suffix tokens)."""
    out = model(**batch.inputs, output_hidden_states=True, use_cache=False, logits_to_keep=batch.tokens + 1)
    states = out.hidden_states[layer + 1][:, -3:].float().mean(1)
    logits = out.logits.float()
    target = batch.inputs["input_ids"][:, -batch.tokens:]
    logp = torch.log_softmax(logits[:, :-1], -1).gather(-1, target.unsqueeze(-1)).squeeze(-1).mean(-1)
    return states, logits, logp


class AntiPaSTO(SteeringMethod):
    name = "antipasto"
    description = "InnerPiSSA's published successor: antiparallel separation, TV barrier, ordering (arXiv 2601.07473)"

    @dataclass
    class Options:
        rank: int = option(64, "top singular directions adapted per weight (published 64; <= d/8 on both models here)")
        modules: str = option("o_proj,down_proj", "projections to adapt: the residual writers")
        first_layer: float = option(0.1, "adapters from this depth fraction up to the loss layer")
        loss_layer: float = option(0.5, "depth fraction of the layer whose output the loss reads (earlier published: 0.9)")
        subspace: int = option(8, "dimensions of the loss subspace (PCA of unit-normalised pair differences)")
        lr: float = option(2e-3, "peak learning rate (AdamW, OneCycle: 10% warm-up, cosine to lr/25)")
        weight_decay: float = option(1e-4, "AdamW weight decay")
        epochs: int = option(0, "epochs; 0: the published 30 on a GPU, 3 on a CPU (early stopping either way)")
        batch_pairs: int = option(16, "pairs per step (32 sequences, the published effective batch)")
        val_fraction: float = option(0.15, "share of the pairs held out for early stopping")
        patience: int = option(3, "epochs without a better validation loss before stopping")
        separation: str = option("antiparallel", "antiparallel (published) | linear (ordered cosines) | none")
        tv: bool = option(True, "the per-token TV coherence barrier (--antipasto.no-tv: off)")
        mono: bool = option(True, "the ordering constraint (--antipasto.no-mono: off)")
        fisher: bool = option(True, "divide the loss subspace by the batch std of d_ref (--antipasto.no-fisher: off)")
        centred: bool = option(True, "centred PCA loss subspace, as published (--antipasto.no-centred: uncentred)")
        focus: bool = option(True, "weight each cosine by focus^(1-s), the change's share in the subspace (no-focus: off)")

        def validate(self) -> None:
            n = "--antipasto."
            for name in ("rank", "subspace", "batch_pairs", "patience"):
                at_least(n + name.replace("_", "-"), getattr(self, name), 1)
            at_least(n + "epochs", self.epochs, 0)
            at_least(n + "weight-decay", self.weight_decay, 0)
            names_list(n + "modules", self.modules)
            positive(n + "lr", self.lr)
            one_of(n + "separation", self.separation, ("antiparallel", "linear", "none"))
            if not 0 <= self.first_layer < self.loss_layer <= 1:
                raise SteerbenchError(f"{n}first-layer {self.first_layer} must be below {n}loss-layer {self.loss_layer} in [0, 1]")
            if not 0 < self.val_fraction < 0.5:
                raise SteerbenchError(f"{n}val-fraction {self.val_fraction} is not accepted; accepted: 0 < x < 0.5")

    def resolved(self, loaded) -> "AntiPaSTO.Options":
        """epochs 0 made explicit: the published 30 on a GPU, 3 on a CPU."""
        epochs = self.options.epochs or (30 if loaded.device.type == "cuda" else 3)
        return dataclasses.replace(self.options, epochs=epochs)

    def fit(self, ctx: FitContext) -> Steering:
        o, loaded = self.resolved(ctx.loaded), ctx.loaded
        n = loaded.n_layers
        loss_layer = min(n - 1, max(1, int(o.loss_layer * n)))
        layers = list(range(min(int(o.first_layer * n), loss_layer - 1), loss_layer))
        targets = find_linear_targets(loaded.model, [m.strip() for m in o.modules.split(",")], layers)
        shape = AdapterShape(rank=o.rank, rotate_v=True, rotate_u=False, scale_s="add", max_angle=MAX_ANGLE,
                             init_std=0.003, s_init_mean=4e-4, s_init_std=4e-4)
        adapters = InnerPiSSAAdapters(loaded.model, targets, shape, seed=ctx.seed)
        order = list(range(len(ctx.pairs)))
        random.Random(ctx.seed).shuffle(order)
        n_val = max(1, round(o.val_fraction * len(order)))
        val, train = order[:n_val], order[n_val:]
        epochs = o.epochs
        torch.manual_seed(ctx.seed)
        with adapters.attached(loaded.model):
            basis, share = self._subspace(ctx, loss_layer, train)
            info = self._train(ctx, adapters, basis, loss_layer, train, val, epochs)
        info.update(targets=targets, loss_layer=loss_layer, n_adapted=len(targets), rank=o.rank,
                    pairs={"train": len(train), "validation": len(val)}, basis_first_share=share,
                    basis="centred" if o.centred else "uncentred")
        return InnerPiSSASteering(adapters, info, info.pop("history"))

    def _subspace(self, ctx: FitContext, layer: int, train: list[int]) -> tuple[torch.Tensor, float]:
        """The loss subspace of the training pairs' reference differences (``loss_subspace``)."""
        diffs = []
        with torch.no_grad():
            for batch in _batches(ctx, ctx.pairs, self.options.batch_pairs, train):
                states, _, _ = _pass(ctx.loaded.model, batch, layer)
                diffs.append(states[0::2] - states[1::2])
        return loss_subspace(torch.cat(diffs), self.options.subspace, self.options.centred)

    def _losses(self, model, adapters, batch: Batch, layer: int, basis, when: LossSchedule) -> dict:
        o = self.options
        with torch.no_grad(), adapters.coefficient(0.0):
            h0, logits0, lp0 = _pass(model, batch, layer)
        full_ref = h0[0::2] - h0[1::2]
        d_ref = full_ref @ basis
        scale = fisher_scale(d_ref) if o.fisher else torch.ones_like(d_ref[0])
        p0 = torch.softmax(logits0, -1)
        tau = 0.5 * math.sqrt(float(-(p0 * torch.log(p0.clamp_min(1e-12))).sum(-1).mean())) + 0.04
        ends, terms = {}, {"warm": when.warm, "focus_s": when.focus_s}
        for alpha, tag, rows in ((1.0, "plus", slice(0, None, 2)), (-1.0, "minus", slice(1, None, 2))):
            with adapters.coefficient(alpha):
                h, logits, lp = _pass(model, batch, layer)
            change = (h[0::2] - h[1::2]) - full_ref  # the pair difference's change, full hidden width
            share = focus(change, basis)
            weight = share ** (1 - when.focus_s) if o.focus else torch.ones_like(share)
            margin = (lp[0::2] - lp[1::2]) - (lp0[0::2] - lp0[1::2])
            penalty, violation = tv_barrier(logits0[rows], logits[rows], 10.0 * when.warm)
            ends[tag] = ((change @ basis) / scale, margin, weight)
            terms[f"coh_{tag}"] = penalty.mean() if o.tv else penalty.new_zeros(())
            terms[f"outside_{tag}"] = float((violation > 0).float().mean())
            terms[f"focus_{tag}"] = float(share.detach().mean())
        (dp, mp, wp), (dm, mm, wm) = ends["plus"], ends["minus"]
        proj = (separation_loss(dp, dm, d_ref / scale, o.separation, wp, wm).mean() if o.separation != "none"
                else dp.new_zeros(()))
        mono = ordering_loss(mp, mm, tau) * when.warm if o.mono else dp.new_zeros(())
        terms.update(proj=proj, mono=mono, margin_plus=float(mp.detach().mean()), margin_minus=float(mm.detach().mean()))
        terms["loss"] = proj + terms["coh_plus"] + terms["coh_minus"] + mono
        return terms

    def _train(self, ctx: FitContext, adapters, basis, layer: int, train: list[int], val: list[int], epochs: int) -> dict:
        o, model = self.options, ctx.loaded.model
        steps_per_epoch = -(-len(train) // o.batch_pairs)
        total = epochs * steps_per_epoch
        opt = torch.optim.AdamW(adapters.trainable(), lr=o.lr, weight_decay=o.weight_decay)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=o.lr, total_steps=total, pct_start=0.1,
                                                    anneal_strategy="cos", div_factor=25.0, final_div_factor=1.0)
        rng, history, step = random.Random(ctx.seed), [], 0
        best, best_state, since, stopped = math.inf, None, 0, None
        bar = tqdm(total=total, desc="antipasto training", unit="step")
        for epoch in range(epochs):
            rng.shuffle(train)
            for batch in _batches(ctx, ctx.pairs, o.batch_pairs, train):
                terms = self._losses(model, adapters, batch, layer, basis, LossSchedule(step, total))
                opt.zero_grad()
                terms["loss"].backward()
                torch.nn.utils.clip_grad_norm_(adapters.trainable(), 1.0)
                opt.step()
                sched.step()
                step += 1
                history.append({"epoch": epoch, "step": step, **{k: float(torch.as_tensor(v).detach()) for k, v in terms.items()}})
                bar.set_postfix(loss=f"{history[-1]['loss']:.3f}")
                bar.update()
            with torch.no_grad():
                val_loss = sum(float(self._losses(model, adapters, b, layer, basis, LossSchedule(total, total))["loss"])
                               for b in _batches(ctx, ctx.pairs, o.batch_pairs, val))
            history[-1]["val_loss"] = val_loss
            if val_loss < best:
                best, best_state, since = val_loss, copy.deepcopy(adapters.state_dict()), 0
            else:
                since += 1
                if since >= o.patience:
                    stopped = epoch
                    break
        bar.close()
        if best_state is not None:
            adapters.load_state_dict(best_state)  # the epoch with the best validation loss
        last = [h for h in history if h["epoch"] == history[-1]["epoch"]]
        final = {k: sum(h[k] for h in last) / len(last) for k in ("proj", "coh_plus", "coh_minus", "mono", "loss")}
        return {"epochs_run": history[-1]["epoch"] + 1 if history else 0, "epochs_planned": epochs,
                "early_stopped_after_epoch": stopped, "best_val_loss": best, "final_terms": final,
                "tokens_outside_margin": {e: sum(h[f"outside_{e}"] for h in last) / len(last) for e in ("plus", "minus")},
                "ordering_margin": {e: sum(h[f"margin_{e}"] for h in last) / len(last) for e in ("plus", "minus")},
                "focus_final": {e: sum(h[f"focus_{e}"] for h in last) / len(last) for e in ("plus", "minus")},
                "steps_run": step, "steps_planned": total,
                "history": history}

    def load(self, path: Path, ctx: FitContext) -> Steering:
        return load_adapter_steering(path, ctx)
