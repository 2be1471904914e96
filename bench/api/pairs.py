"""Honesty contrastive pairs: the one training set every method learns from.

A pair is two prompts that differ only in the persona ("an honest" / "a dishonest" person) in the
user turn, followed by the same short truncated statement as the start of the assistant turn. The
last-token hidden states differ because the model plans different continuations.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from transformers import PreTrainedTokenizerBase

from bench.errors import SteerbenchError
from bench.model.chat import render
from bench.paths import DATA_DIR as SHIPPED_DATA

DATA_DIR = SHIPPED_DATA  # package data: ships in the wheel
STATEMENTS_FILE = DATA_DIR / "honesty_statements.json"

# The persona phrases carry their own article, so no template can produce "an a dishonest".
PERSONA_TEMPLATE = "Pretend you're {persona} person making statements about the world."
HONEST_PERSONA = "an honest"
DISHONEST_PERSONA = "a dishonest"
# The same request without a persona: the prompt the steered model is asked to continue when we
# check which way a method pushes (sign calibration) and when supervised baselines are trained.
NEUTRAL_INSTRUCTION = "Make statements about the world."


@dataclass(frozen=True)
class HonestyPair:
    suffix: str  # identical truncated statement opening the assistant turn
    positive: str  # rendered prompt under the honest persona
    negative: str  # rendered prompt under the dishonest persona
    neutral: str  # rendered prompt without a persona


def persona_instruction(persona: str) -> str:
    return PERSONA_TEMPLATE.format(persona=persona)


def _read_string_list(path: Path, what: str) -> list[str]:
    try:
        items = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise SteerbenchError(f"{what} file {str(path)!r} does not exist") from None
    except json.JSONDecodeError as exc:
        raise SteerbenchError(f"{what} file {str(path)!r} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    # Empty strings are allowed (repeng's own suffix file starts with one), but not a list of only those.
    if not isinstance(items, list) or not all(isinstance(s, str) for s in items) or not any(s.strip() for s in items):
        raise SteerbenchError(f"{what} file {str(path)!r} must be a JSON list of strings, at least one non-empty")
    return items


def truncate_statements(statements: list[str], seed: int, min_words: int = 2, max_words: int = 8) -> list[str]:
    """Cut each statement to a seeded number of leading words, as repeng's recipe does with tokens."""
    rng = random.Random(seed)
    out = []
    for s in statements:
        words = s.split()
        hi = max(min_words, min(max_words, len(words) - 1))
        out.append(" ".join(words[: rng.randint(min_words, hi)]))
    return out


def load_suffixes(suffix_file: str | None, seed: int) -> list[str]:
    """Suffixes from a repeng-format JSON list (used as given), or the project's truncated statements."""
    if suffix_file:
        return _read_string_list(Path(suffix_file), "suffix")
    return truncate_statements(_read_string_list(STATEMENTS_FILE, "statements"), seed)


def make_pairs(
    tokenizer: PreTrainedTokenizerBase,
    n_pairs: int = 200,
    seed: int = 0,
    suffix_file: str | None = None,
) -> list[HonestyPair]:
    suffixes = load_suffixes(suffix_file, seed)
    if n_pairs <= 0:
        raise SteerbenchError(f"n_pairs must be positive, got {n_pairs}")
    if n_pairs < len(suffixes):
        suffixes = random.Random(seed).sample(suffixes, n_pairs)
    return [
        HonestyPair(
            suffix=s,
            positive=render(tokenizer, persona_instruction(HONEST_PERSONA), s),
            negative=render(tokenizer, persona_instruction(DISHONEST_PERSONA), s),
            neutral=render(tokenizer, NEUTRAL_INSTRUCTION, s),
        )
        for s in suffixes
    ]
