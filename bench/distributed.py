"""Data-parallel evaluation over processes started by ``accelerate launch`` (or ``torchrun``).

Each process reads its rank from the environment those launchers set (``RANK``, ``WORLD_SIZE``),
evaluates every ``world``-th batch of each (method, coefficient) chunk and writes its part to the
result store; the parts are merged into the same chunk file a single process would write. No
collective communication is needed: the store is the meeting point, which also makes a killed
sharded run resume like any other.

Fitting is not sharded: the first process to take a method's lock fits it, the others wait and load
the artefact. Trainers (trl, peft) must not see the launcher's variables, or they would start a
distributed training that the other processes never join; ``single_process_env`` hides them.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pandas as pd

from bench.errors import SteerbenchError
from bench.store import atomic_write_frame, read_cached_frame

LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK",
                      "ROLE_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID")
PART_TIMEOUT_S = float(os.environ.get("STEERBENCH_PART_TIMEOUT", 6 * 3600))


@dataclass(frozen=True)
class ProcessShard:
    rank: int = 0
    world: int = 1

    @classmethod
    def from_env(cls) -> "ProcessShard":
        try:
            rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
        except ValueError:
            raise SteerbenchError(f"RANK={os.environ.get('RANK')!r} / WORLD_SIZE={os.environ.get('WORLD_SIZE')!r} "
                                  "are not integers (set by accelerate launch / torchrun)") from None
        if world < 1 or not 0 <= rank < world:
            raise SteerbenchError(f"RANK={rank} is not in 0..WORLD_SIZE-1={world - 1}")
        return cls(rank, world)

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def sharded(self) -> bool:
        return self.world > 1

    def part_path(self, chunk: Path, rank: int | None = None) -> Path:
        rank = self.rank if rank is None else rank
        return chunk.with_name(f"{chunk.stem}.part{rank}of{self.world}{chunk.suffix}")

    def gather(self, chunk: Path, part: pd.DataFrame) -> pd.DataFrame:
        """Write this process's part of ``chunk``, wait for the others' parts, return them merged."""
        atomic_write_frame(self.part_path(chunk), part)
        parts = []
        deadline = time.monotonic() + PART_TIMEOUT_S
        for rank in range(self.world):
            path = self.part_path(chunk, rank)
            while (frame := read_cached_frame(path)) is None:
                if time.monotonic() > deadline:
                    raise SteerbenchError(f"process {rank} of {self.world} did not write {path.name} within "
                                          f"{PART_TIMEOUT_S:.0f} s (STEERBENCH_PART_TIMEOUT); did it crash? rerun "
                                          "the same command to resume")
                time.sleep(0.2)
            parts.append(frame)
        return pd.concat(parts, ignore_index=True)


@contextlib.contextmanager
def single_process_env() -> Iterator[None]:
    """Hide the launcher's variables for the block, so a trainer runs in this process alone."""
    saved = {k: os.environ.pop(k) for k in LAUNCHER_VARIABLES if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)
