import json
from pathlib import Path

import pytest

from bench.api.pairs import (
    DISHONEST_PERSONA,
    HONEST_PERSONA,
    make_pairs,
    persona_instruction,
)
from bench.errors import SteerbenchError

REPENG_SUFFIXES = Path(__file__).resolve().parents[2] / "shared" / "data" / "repeng" / "all_truncated_outputs.json"


def test_persona_articles():
    assert persona_instruction(HONEST_PERSONA) == "Pretend you're an honest person making statements about the world."
    assert persona_instruction(DISHONEST_PERSONA) == "Pretend you're a dishonest person making statements about the world."


def test_pairs_differ_only_in_persona(tiny):
    pairs = make_pairs(tiny.tokenizer, n_pairs=20, seed=0)
    assert len(pairs) == 20 and len({p.suffix for p in pairs}) == 20
    for p in pairs:
        assert "an a " not in p.positive + p.negative and "a an " not in p.positive + p.negative
        assert p.positive.endswith(p.suffix) and p.negative.endswith(p.suffix)
        assert p.positive.replace("an honest", "a dishonest") == p.negative
        assert "<|im_start|>assistant" in p.positive  # the chat template was applied


def test_pairs_are_seeded(tiny):
    a = make_pairs(tiny.tokenizer, n_pairs=10, seed=1)
    b = make_pairs(tiny.tokenizer, n_pairs=10, seed=1)
    c = make_pairs(tiny.tokenizer, n_pairs=10, seed=2)
    assert a == b and a != c


def test_repeng_suffix_file(tiny):
    pairs = make_pairs(tiny.tokenizer, n_pairs=5, seed=0, suffix_file=str(REPENG_SUFFIXES))
    all_suffixes = json.loads(REPENG_SUFFIXES.read_text())
    assert all(p.suffix in all_suffixes for p in pairs)


@pytest.mark.parametrize("content", ["", "{}", "[]", "[1, 2]", '["", " "]', "not json"])
def test_malformed_suffix_file(tiny, tmp_path, content):
    f = tmp_path / "bad.json"
    f.write_text(content)
    with pytest.raises(SteerbenchError, match="bad.json"):
        make_pairs(tiny.tokenizer, n_pairs=5, suffix_file=str(f))


def test_plain_text_fallback_without_chat_template(tiny, caplog):
    tiny.tokenizer.chat_template = None
    pairs = make_pairs(tiny.tokenizer, n_pairs=3)
    assert pairs[0].positive.startswith("System: ") and "Assistant: " in pairs[0].positive
    assert "no chat template" in caplog.text
