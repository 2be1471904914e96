"""Every command in the README's fenced shell blocks names things that exist: each ``make`` target and
variable is in the Makefile, each ``steerbench`` subcommand and ``--flag`` is accepted by its parser,
each ``--METHOD.OPTION`` by its method, and each linked file is in the repository."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def shell_lines(text: str) -> list[str]:
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()  # trailing comments
            if line and not line.startswith("#"):
                lines += [part.strip() for part in re.split(r"&&|;", line) if part.strip()]
    return lines


def makefile_targets_and_vars() -> tuple[set[str], set[str]]:
    text = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"(?m)^([a-z][\w-]*):", text))
    variables = set(re.findall(r"(?m)^([A-Z_]+)\s*[?:]?=", text)) | set(re.findall(r"\$\(([A-Z_]+)\)", text))
    return targets, variables


def steerbench_parsers():
    from bench.cli import _parser

    parser = _parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return sub.choices


def check_method_option(flag: str) -> None:
    import dataclasses

    from methods import get_method_class

    method, _, option = flag[2:].partition(".")
    option = option.split("=")[0]
    fields = {f.name.replace("_", "-") for f in dataclasses.fields(get_method_class(method).Options)}
    assert option in fields or (option.startswith("no-") and option[3:] in fields), f"{flag}: no such option"


def check_steerbench(words: list[str]) -> None:
    parsers = steerbench_parsers()
    assert words and words[0] in parsers, f"steerbench {words[:1]}: no such subcommand"
    known = {s for a in parsers[words[0]]._actions for s in a.option_strings}
    for word in words[1:]:
        if not word.startswith("--"):
            continue
        if "." in word.split("=")[0]:
            check_method_option(word)
        else:
            assert word.split("=")[0] in known, f"steerbench {words[0]} {word}: no such option"


def check_line(line: str, targets: set[str], variables: set[str]) -> None:
    words = shlex.split(line)
    if words[0] == "make":
        for word in words[1:]:
            if "=" in word:
                assert word.split("=")[0] in variables, f"{line}: make variable {word.split('=')[0]} is not in the Makefile"
            else:
                assert word in targets, f"{line}: make target {word} is not in the Makefile"
    elif words[0] in ("steerbench", ".venv/bin/steerbench"):
        check_steerbench(words[1:])
    elif words[:3] in (["python", "-m", "bench"], [".venv/bin/python", "-m", "bench"]):
        check_steerbench(words[3:])


def test_every_readme_command_names_real_targets_and_flags():
    targets, variables = makefile_targets_and_vars()
    lines = shell_lines(README.read_text())
    assert any(line.startswith("make bench") for line in lines) and any(line == "make test" for line in lines)
    for line in lines:
        check_line(line, targets, variables)


def test_every_readme_link_points_to_a_file():
    for target in re.findall(r"\]\(([^)#]+)\)", README.read_text()):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), f"README links to {target}, which does not exist"


@pytest.mark.parametrize("line", ["make bench NO_SUCH_VAR=1", "make no-such-target", "steerbench run --no-such-flag",
                                  "steerbench run --innerpissa.no-such-option 3", "steerbench nosuch"])
def test_the_check_catches_what_does_not_exist(line):
    targets, variables = makefile_targets_and_vars()
    with pytest.raises(AssertionError):
        check_line(line, targets, variables)


def test_the_readme_stays_short():
    assert len(README.read_text().splitlines()) <= 320
