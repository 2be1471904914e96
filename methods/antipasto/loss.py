"""AntiPaSTO's loss terms (SPEC: the published loss), each a pure function of tensors so that a test can
check its defining property, and the schedule that ramps them over the first 20% of optimiser steps."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

MAX_ANGLE = 2 * math.tan(math.pi / 8)  # soft clamp of the skew generator: rotation angle <= pi/4


def ramp(step: int, total: int, fraction: float = 0.2) -> float:
    """0 at the first step, rising linearly to 1 at ``fraction`` of the ``total`` optimiser steps."""
    return min(1.0, step / max(1.0, fraction * total))


@dataclass(frozen=True)
class LossSchedule:
    """Where a step is in training, in optimiser steps: the TV strength and ordering weight ramp from 0, the
    focus exponent's s from 1 to 0.25, all over the first 20% of ``total`` steps (validation: ``step=total``)."""

    step: int
    total: int

    @property
    def warm(self) -> float:
        return ramp(self.step, self.total)

    @property
    def focus_s(self) -> float:
        return 1.0 - 0.75 * self.warm


def fisher_scale(d_ref: torch.Tensor) -> torch.Tensor:
    """Per-dimension batch std of the reference differences, floored at max(0.1 x median, 0.05); no grad."""
    std = d_ref.detach().std(0, unbiased=False)
    return std.clamp(min=max(0.1 * float(std.median()), 0.05))


def separation_loss(delta_plus: torch.Tensor, delta_minus: torch.Tensor, d_ref: torch.Tensor, form: str,
                    weight_plus: torch.Tensor | float = 1.0, weight_minus: torch.Tensor | float = 1.0) -> torch.Tensor:
    """Per pair, on the cosines times their focus weights: antiparallel ``u + relu(u)^2``, u = 30 c+ c-;
    linear ``(c- - c+) / 2``."""
    c_plus = F.cosine_similarity(delta_plus, d_ref, dim=-1) * weight_plus
    c_minus = F.cosine_similarity(delta_minus, d_ref, dim=-1) * weight_minus
    if form == "linear":
        return (c_minus - c_plus) / 2
    u = 30 * c_plus * c_minus
    return u + F.relu(u) ** 2


def focus(change: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """Per pair: the share of a hidden-state change (full width) that lies in the orthonormal loss subspace,
    ||change @ basis|| / ||change|| in [0, 1]."""
    return ((change @ basis).norm(dim=-1) / change.norm(dim=-1).clamp_min(1e-3)).clamp(max=1.0)


def loss_subspace(diffs: torch.Tensor, k: int, centred: bool) -> tuple[torch.Tensor, float]:
    """(d x k basis, the first component's share of the mean difference's squared norm) of the PCA of the
    unit-normalised pair differences ``diffs`` [pairs, d]; centred: their mean removed first (published)."""
    norms = diffs.float().norm(dim=-1, keepdim=True)
    unit = diffs.float() / (norms + 0.01 * norms.median())  # unit length, with the published robust floor
    mean = unit.mean(0)
    _, _, vh = torch.linalg.svd(unit - mean if centred else unit, full_matrices=False)
    share = float((vh[0] @ mean) ** 2 / (mean @ mean).clamp_min(1e-12))
    return vh[:k].T.contiguous(), share


def tv_barrier(logits_ref: torch.Tensor, logits: torch.Tensor, s: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(penalty per token, violation per token) of the total variation from the reference distribution."""
    p_ref = torch.softmax(logits_ref.float(), -1)
    p = torch.softmax(logits.float(), -1)
    tv = 0.5 * (p_ref - p).abs().sum(-1)
    entropy = -(p_ref * torch.log(p_ref.clamp_min(1e-12))).sum(-1)
    v = F.relu(tv - 0.9 * torch.sqrt(entropy + 0.02))
    return torch.log1p(s * v) ** 2 + v, v


def ordering_loss(delta_plus: torch.Tensor, delta_minus: torch.Tensor, tau: float) -> torch.Tensor:
    """30 x the smaller of the forward (+1 above tau, -1 below -tau) and backward mean hinge violations."""
    forward = (F.relu(delta_minus + tau) + F.relu(tau - delta_plus)).mean()
    backward = (F.relu(delta_plus + tau) + F.relu(tau - delta_minus)).mean()
    return 30 * torch.minimum(forward, backward)
