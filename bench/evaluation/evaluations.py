"""DailyDilemmas scores per (fitted steering, effective coefficient), cached as parquet chunks.

A chunk holds every evaluated row's logratio and Yes/No mass plus the held-out NLL at that coefficient.
Its key is everything that changes those numbers (model, steering, coefficient, the exact prompts, the
evaluation path, the held-out texts, the batch size). In a sharded run each process scores every N-th
batch into a part file; the parts are merged here into the chunk a single process would have written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pandas as pd

from bench.api.steering import Steering
from bench.distributed import ProcessShard
from bench.evaluation.evaluator import dilemma_prompts, heldout_nll, score_prompts
from bench.model.loading import LoadedModel
from bench.store import atomic_write_frame, cache_key, file_lock, read_cached_frame, stable_hash
from bench.timing import StageClock


class EvaluationStore:
    def __init__(self, cache: Path, loaded: LoadedModel, rows: pd.DataFrame, model_key: dict, nll_texts_hash: str,
                 batch_size: int, prefix_cache: bool, base_system: str | None, shard: ProcessShard,
                 clock: StageClock, work: dict[str, int], on_forward: Callable[[], None]):
        self.cache, self.loaded, self.rows = cache, loaded, rows
        self.model_key, self.nll_texts_hash = model_key, nll_texts_hash
        self.batch_size, self.prefix_cache, self.base_system = batch_size, prefix_cache, base_system
        self.shard, self.clock, self.work, self.on_forward = shard, clock, work, on_forward

    def chunk(self, steering: Steering, key: str, coeff: float, desc: str) -> pd.DataFrame:
        """Logratio and pmass for every dilemma row at one effective coefficient (cached)."""
        system = steering.system_prompt(coeff, self.base_system)
        prompts = dilemma_prompts(self.loaded.tokenizer, self.rows, system)
        # The evaluation path is in the key: both give the same scores to float tolerance, not bit for bit.
        path_name = "prefix-cache" if self.prefix_cache else "full"
        # The batch size changes bf16 numerics (GEMM shapes, padding): in the key, like the dtype.
        chunk_key = cache_key({**self.model_key, "steering": key, "coeff": coeff, "prompts": prompts, "path": path_name,
                               "nll_texts": self.nll_texts_hash, "batch_size": self.batch_size})
        path = self.cache / "eval" / f"{chunk_key}.parquet"
        lock = self.cache / "locks" / f"eval-{chunk_key}.lock"
        if self.shard.sharded:  # each process holds the lock of its own part only
            lock = self.shard.part_path(lock)
        with file_lock(lock):
            cached = read_cached_frame(path)
            if cached is not None:
                return cached
            part = read_cached_frame(self.shard.part_path(path)) if self.shard.sharded else None
            if part is None:
                part = self._score(steering, coeff, prompts, system, desc)
            frame = self._merge_parts(self.shard.gather(path, part)) if self.shard.sharded else part
            atomic_write_frame(path, frame)
            return frame

    def _score(self, steering: Steering, coeff: float, prompts: list[str], system: str | None, desc: str) -> pd.DataFrame:
        """This process's rows of one chunk: logratio, pmass, and the held-out NLL (the main process's job)."""
        self.work["evaluations"] += 1
        self.work["c0_evaluations"] += coeff == 0
        groups = self.rows["dilemma_idx"].tolist() if self.prefix_cache else None
        shard = (self.shard.rank, self.shard.world)
        loop = self.loaded.steered_loop
        with steering.apply(self.loaded.model, coeff) as steered:
            with self.clock("DailyDilemmas scoring"):
                scores = loop(steering, coeff, ("dilemmas", stable_hash(prompts), self.batch_size, groups is None, shard),
                              lambda: score_prompts(steered, self.loaded.tokenizer, prompts, self.batch_size, desc,
                                                    on_forward=self.on_forward, groups=groups, shard=shard))
            with self.clock("held-out NLL"):
                nll = loop(steering, coeff, ("heldout-nll", system),
                           lambda: heldout_nll(steered, self.loaded.tokenizer, system)) if self.shard.main else float("nan")
        idx = self.rows["idx"].to_numpy()[scores["row"].to_numpy()]
        return pd.DataFrame({"idx": idx, "logratio": scores["logratio"].to_numpy(),
                             "pmass": scores["pmass"].to_numpy(), "nll": nll})

    def _merge_parts(self, parts: pd.DataFrame) -> pd.DataFrame:
        """The shards' rows in the order a single process writes them, with the main process's NLL."""
        nll = parts["nll"].dropna()
        merged = parts.set_index("idx").loc[self.rows["idx"].to_numpy()].reset_index()
        merged["nll"] = float(nll.iloc[0]) if len(nll) else float("nan")
        return merged[["idx", "logratio", "pmass", "nll"]]
