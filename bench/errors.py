"""One exception type for every mistake a user can make.

The CLI prints ``SteerbenchError`` as a single line (no traceback) and exits non-zero,
so every message must name the bad value and say what is accepted.
"""


class SteerbenchError(Exception):
    """A user-facing error: bad input, missing file, unreachable model."""
