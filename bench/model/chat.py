"""Render (system, user, assistant-prefix) turns into the exact text a model sees.

Every prompt in steerbench (honesty pairs, DailyDilemmas questions, held-out NLL text)
goes through ``render`` so that all conditions share one template and one system message.
Models without a chat template get a plain-text fallback, warned about once.
"""

from __future__ import annotations

import logging

from transformers import PreTrainedTokenizerBase

log = logging.getLogger(__name__)

# One fixed system message for every condition. SmolLM2's template injects its own default
# when none is given; passing ours explicitly keeps c=0 identical across methods, and the
# prompting method appends to it rather than replacing it.
DEFAULT_SYSTEM = "You are a helpful assistant."

_warned_plain: set[int] = set()
_warned_folded: set[int] = set()


def has_chat_template(tokenizer: PreTrainedTokenizerBase) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def render(
    tokenizer: PreTrainedTokenizerBase,
    user: str,
    assistant_prefix: str = "",
    system: str | None = DEFAULT_SYSTEM,
) -> str:
    """Text of a conversation whose assistant turn is open and starts with ``assistant_prefix``."""
    if not has_chat_template(tokenizer):
        if id(tokenizer) not in _warned_plain:
            _warned_plain.add(id(tokenizer))
            log.warning(
                "tokenizer %r has no chat template: using the plain-text fallback "
                "'System:/User:/Assistant:' for every prompt",
                getattr(tokenizer, "name_or_path", "?"),
            )
        head = f"System: {system}\n\n" if system else ""
        return f"{head}User: {user}\n\nAssistant: {assistant_prefix}"
    messages = [{"role": "user", "content": user}]
    if system:
        messages.insert(0, {"role": "system", "content": system})
    try:
        # enable_thinking=False: Qwen3-style templates close the think block so the answer
        # comes first; templates without that variable ignore it.
        text = tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True, enable_thinking=False
        )
    except Exception:  # some templates reject a system role: fold it into the user turn
        if id(tokenizer) not in _warned_folded:
            _warned_folded.add(id(tokenizer))
            log.warning(
                "the chat template of %r rejects a system role: the system message is put at the top of "
                "the user turn in every prompt", getattr(tokenizer, "name_or_path", "?"))
        merged = [{"role": "user", "content": f"{system}\n\n{user}" if system else user}]
        text = tokenizer.apply_chat_template(
            merged, tokenize=False, add_generation_prompt=True, enable_thinking=False
        )
    return text + assistant_prefix
