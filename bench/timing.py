"""Wall time per stage of a run (load, fit, KL search, calibration, scoring, ...), for ``make perf``.

Stages nest (a fit that generates continuations): the inner stage's time is not counted in the outer one,
so the shares add up to the time spent inside any stage.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from typing import Iterator


class StageClock:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._stack: list[list] = []  # [stage, time its current slice started]

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        now = time.perf_counter()
        if self._stack:  # pause the enclosing stage
            self.seconds[self._stack[-1][0]] += now - self._stack[-1][1]
        self._stack.append([stage, now])
        try:
            yield
        finally:
            name, t0 = self._stack.pop()
            end = time.perf_counter()
            self.seconds[name] += end - t0
            if self._stack:  # resume it
                self._stack[-1][1] = end

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 1) for k, v in sorted(self.seconds.items(), key=lambda kv: -kv[1])}
