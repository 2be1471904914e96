"""The InnerPiSSA layer: a Linear split into its top-r SVD part and a frozen residual.

``W = U diag(S) V^T + W_res``. With coefficient ``c`` the layer computes
``y = x @ (V R_v(c)) @ diag(S_c) @ (U R_u(c))^T + x @ W_res^T (+ bias)`` where
``R(c) = cayley(c * A)``, ``A`` a learnable skew-symmetric matrix soft-bounded elementwise to a
maximum angle, and ``S_c = S + c * tanh(delta_s)`` (add2, SPEC.md), ``S + c * delta_s`` (add: AntiPaSTO's),
``exp(c * delta_s) * S`` (mult) or ``S`` (none).
Cayley rotations are exactly orthogonal and ``R(-c) = R(c)^-1``, so +c and -c are inverse moves.
At ``c=0`` both rotations are the identity and ``S_c = S``: the layer equals the original ``W``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

SCALE_MODES = ("add2", "add", "mult", "none")


@dataclass
class AdapterShape:
    rank: int = 16
    rotate_u: bool = False  # the journal: rotating U was unstable (it changes the residual basis)
    rotate_v: bool = True
    scale_s: str = "add2"
    max_angle: float = 0.3  # radians, soft bound on each entry of the skew generator
    init_std: float = 1e-3  # small and non-zero: at exactly zero the +-c branches are symmetric
    s_init_mean: float = 0.0  # delta_s ~ N(s_init_mean, s_init_std^2); s_init_std None: init_std
    s_init_std: float | None = None


def skew(theta: torch.Tensor) -> torch.Tensor:
    return theta - theta.T


def cayley(a: torch.Tensor) -> torch.Tensor:
    """Orthogonal ``(I - a/2)^-1 (I + a/2)`` for skew-symmetric ``a``."""
    eye = torch.eye(a.shape[0], dtype=a.dtype, device=a.device)
    return torch.linalg.solve(eye - a / 2, eye + a / 2)


class InnerPiSSALinear(nn.Module):
    def __init__(self, base: nn.Linear, shape: AdapterShape, generator: torch.Generator | None = None):
        super().__init__()
        if shape.scale_s not in SCALE_MODES:
            raise ValueError(f"scale_s must be one of {SCALE_MODES}, got {shape.scale_s!r}")
        self.shape = shape
        self.in_features, self.out_features = base.in_features, base.out_features
        weight = base.weight.detach().float()
        r = min(shape.rank, *weight.shape)
        u, s, vh = torch.linalg.svd(weight, full_matrices=False)
        u, s, v = u[:, :r], s[:r], vh[:r].T
        dtype = base.weight.dtype
        # Frozen buffers in fp32 for the low-rank path (it is tiny), the residual in the model dtype.
        self.register_buffer("u", u.contiguous())
        self.register_buffer("s", s.contiguous())
        self.register_buffer("v", v.contiguous())
        self.register_buffer("w_res", (weight - u @ torch.diag(s) @ v.T).to(dtype))
        self.register_buffer("bias", None if base.bias is None else base.bias.detach().clone())
        def init(*size: int, mean: float = 0.0, std: float = shape.init_std) -> nn.Parameter:
            return nn.Parameter(torch.randn(*size, generator=generator) * std + mean)

        self.theta_v = init(r, r) if shape.rotate_v else None
        self.theta_u = init(r, r) if shape.rotate_u else None
        s_std = shape.init_std if shape.s_init_std is None else shape.s_init_std
        self.delta_s = init(r, mean=shape.s_init_mean, std=s_std) if shape.scale_s != "none" else None
        self.coeff = 0.0
        self._dense_cache: tuple[tuple, torch.Tensor] | None = None

    def generator(self, theta: torch.Tensor) -> torch.Tensor:
        a = skew(theta)
        return self.shape.max_angle * torch.tanh(a / self.shape.max_angle)

    def rotation(self, theta: torch.Tensor | None, coeff: float) -> torch.Tensor | None:
        if theta is None or coeff == 0:
            return None
        return cayley(coeff * self.generator(theta))

    def scaled_s(self, coeff: float) -> torch.Tensor:
        if self.delta_s is None or coeff == 0:
            return self.s
        if self.shape.scale_s == "add2":
            return self.s + coeff * torch.tanh(self.delta_s)
        if self.shape.scale_s == "add":
            return self.s + coeff * self.delta_s
        return torch.exp(coeff * self.delta_s) * self.s

    def low_rank_factors(self, coeff: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(U_c, S_c, V_c) so that the low-rank part is ``U_c diag(S_c) V_c^T``."""
        rv, ru = self.rotation(self.theta_v, coeff), self.rotation(self.theta_u, coeff)
        v = self.v if rv is None else self.v @ rv
        u = self.u if ru is None else self.u @ ru
        return u, self.scaled_s(coeff), v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled():  # scoring: one dense matmul, exactly the base layer's cost
            return torch.nn.functional.linear(x, self.dense_weight(self.coeff, x.dtype), self.bias)
        u, s, v = self.low_rank_factors(self.coeff)
        low = ((x.float() @ v) * s) @ u.T
        y = torch.nn.functional.linear(x, self.w_res, self.bias) + low.to(x.dtype)
        return y

    def dense_weight(self, coeff: float, dtype: torch.dtype) -> torch.Tensor:
        """``merged_weight(coeff)`` in ``dtype``, cached until the coefficient or a parameter changes
        (parameters' in-place version counters: an optimizer step or a load invalidates it)."""
        params = [p for p in (self.theta_v, self.theta_u, self.delta_s) if p is not None]
        key = (coeff, dtype, *(p._version for p in params), *(id(p) for p in params))
        if self._dense_cache is None or self._dense_cache[0] != key:
            with torch.no_grad():
                self._dense_cache = (key, self.merged_weight(coeff).to(dtype).contiguous())
        return self._dense_cache[1]

    def merged_weight(self, coeff: float) -> torch.Tensor:
        """The dense weight this layer computes at ``coeff`` (for merging and tests)."""
        u, s, v = self.low_rank_factors(coeff)
        return self.w_res.float() + u @ torch.diag(s) @ v.T
