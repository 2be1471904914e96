"""README.md, docs/*.md and results/README.md state only what is true of the repository:

- every repository path they name (a link, or a path such as ``bench/model/replay.py`` or
  ``results/smollm2-135m/frontier``) exists;
- every ``steerbench run ... --run-name NAME`` that names a committed run re-parses (with the CLI's own
  parser) to that run's recorded config;
- the DailyDilemmas checksums the README prints are those every committed run recorded;
- they speak of the software, not of how it was developed (no issue, session, SPEC or design-card talk).
Each check is shown to fail on a planted error (the ``*_is_caught`` tests)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from tests.test_results_index import committed_runs, mismatches

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "results" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TOP = ("bench", "methods", "tests", "data", "docs", "results")
TOP_FILES = ("README.md", "LICENSE", "CITATION.cff", "Makefile", "pyproject.toml", "constraints.txt")
# paths a command creates (not in a fresh clone), that an example asks you to write, or of the built wheel
CREATED = {"methods/my_vector.py", "bench/data", "results/smollm2-135m/smoke", "results/tables", "results/cmp",
           "data/daily_dilemmas", "data/daily_dilemmas/dilemma_to_action_to_values_aggregated.csv",
           "data/daily_dilemmas/values.csv"}
PATH = re.compile(r"(?<![\w/.~$-])((?:%s)/[\w./*<>{},-]*[\w*>}/]|(?:%s)(?![\w.-]))" % ("|".join(TOP), "|".join(
    re.escape(f) for f in TOP_FILES)))
LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")


def named_paths(doc: Path, text: str) -> list[tuple[int, str, Path]]:
    """(line, as written, where it must exist) for every repository path the text names."""
    out = []
    for i, line in enumerate(text.splitlines(), 1):
        links = LINK.findall(line)
        for target in links:
            if not re.match(r"[a-z]+:", target):
                out.append((i, target, (doc.parent / target).resolve()))
        bare = LINK.sub("", line)  # a link's target is checked above, relative to its document
        for raw in PATH.findall(bare):
            path = raw.rstrip(".,").rstrip("/")
            if any(ch in path for ch in "<>*{}$") or path in CREATED or path.rstrip("/") in CREATED:
                continue  # a pattern (results/<model>/...), not a file
            out.append((i, raw, ROOT / path))
    return out


def missing(doc: Path, text: str) -> list[str]:
    return [f"{doc.relative_to(ROOT)}:{i}: {raw}" for i, raw, where in named_paths(doc, text) if not where.exists()]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_named_repository_path_exists(doc):
    assert not missing(doc, doc.read_text()), "\n".join(missing(doc, doc.read_text()))


def test_a_wrong_path_is_caught():
    doc = ROOT / "docs" / "methods.md"
    text = "See `bench/model/no_such.py`, [this](no_such.md) and results/smollm2-135m/no-such-run/config.json."
    assert len(missing(doc, text)) == 3
    assert not missing(doc, "See `bench/model/replay.py`, [stats](statistics.md), results/smollm2-135m/frontier "
                            "and results/<model>/cache/.")


# ------------------------------------------------------------------------- reproduce commands in prose
def run_commands(text: str) -> list[tuple[str, Path]]:
    """Every ``steerbench run ... --run-name NAME`` whose run is committed, with its run folder."""
    runs = {(r.parent.name, r.name): r for r in committed_runs()}
    found = []
    for m in re.finditer(r"steerbench run [^`\n]*--run-name [\w.-]+", text):
        words = shlex.split(m.group(0))
        model = words[words.index("--model") + 1] if "--model" in words else "smollm2-135m"
        name = words[words.index("--run-name") + 1]
        if (model, name) in runs:
            found.append((m.group(0), runs[(model, name)]))
    return found


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_quoted_command_of_a_committed_run_reproduces_its_config(doc):
    for command_line, run in run_commands(doc.read_text()):
        assert not mismatches(command_line, run), f"{doc.name}: {command_line}: {mismatches(command_line, run)}"


def test_a_stale_command_in_prose_is_caught():
    text = "rerun it: `steerbench run --methods prompting,random,repeng,innerpissa,svd-steer,lora,sft --tuned none " \
           "--run-name v1-all-dilemmas` (made before the split)"
    ((command_line, run),) = run_commands(text)
    assert any(m.startswith("split:") for m in mismatches(command_line, run))
    assert not mismatches(command_line.replace("--tuned none", "--split all --tuned none"), run)


# ------------------------------------------------------------------------------------ data checksums
def test_the_readme_checksums_are_those_the_committed_runs_read():
    printed = dict((name, sha) for sha, name in re.findall(r"^([0-9a-f]{64})  data/daily_dilemmas/(\S+)$",
                                                             (ROOT / "README.md").read_text(), re.M))
    assert set(printed) == {"dilemma_to_action_to_values_aggregated.csv", "values.csv"}
    recorded = [json.loads((r / "environment.json").read_text()).get("data_files_sha256") for r in committed_runs()]
    recorded = [r for r in recorded if isinstance(r, dict)]
    assert recorded and all(r == printed for r in recorded), "a committed run read other DailyDilemmas files"


# --------------------------------------------------------------------------------- process language
PROCESS = re.compile(r"\b(issues?|session'?s?|design card|journal'?s?|FAIL row)\b", re.I)
SPEC = re.compile(r"\bSPEC\b")  # the project's specification file, which is not in the repository
# a link to another project's issue tracker, or a code name in backticks (a module such as `session.py`)
ALLOWED = re.compile(r"github\.com/[^)\s]*/issues|`[^`]*`")


def process_words(text: str) -> list[str]:
    return [f"{i}: {line.strip()[:100]}" for i, line in enumerate(text.splitlines(), 1)
            if PROCESS.search(ALLOWED.sub("", line)) or SPEC.search(line)]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_docs_speak_of_the_software_not_of_its_development(doc):
    found = process_words(doc.read_text())
    assert not found, f"{doc.name}:\n" + "\n".join(found)


def test_process_language_is_caught():
    assert process_words("at the issue's 29-min bound") and process_words("as SPEC defines it")
    assert process_words("this session's checkout") and process_words("the journal (2025-10-07) saw")
    assert process_words("the design card's model")
    assert not process_words("a specific option; spec strings; see https://github.com/a/b/issues/3")


# ----------------------------------------------- `make bench` / `make frontier` quoted beside a committed run
MAKE_FLAGS = {"MODEL": "--model", "METHODS": "--methods", "COEFFS": "--coeffs", "N_DILEMMAS": "--n-dilemmas",
              "SEED": "--seed", "SEEDS": "--seeds", "STRENGTH": "--strength", "KL_BUDGET": "--kl-budget",
              "KL_BUDGETS": "--kl-budgets"}


def make_defaults() -> dict[str, str]:
    text = (ROOT / "Makefile").read_text()
    return {k: v.strip() for k, v in re.findall(r"(?m)^([A-Z_]+)\s*\?=[ \t]*(.*)$", text)}


def as_steerbench(make_line: str) -> str | None:
    """The ``steerbench run`` a ``make bench|frontier VAR=...`` line runs (Makefile defaults filled in)."""
    words = shlex.split(make_line)
    if len(words) < 2 or words[1] not in ("bench", "frontier"):
        return None
    values, args = make_defaults(), []
    for w in words[2:]:
        key, _, value = w.partition("=")
        values[key] = value
    if words[1] == "bench":
        values.pop("KL_BUDGETS", None)
    args = shlex.split(values.get("ARGS", ""))
    flags = [f"{flag}={values[k]}" for k, flag in MAKE_FLAGS.items() if values.get(k)]
    return shlex.join(["steerbench", "run", *flags, *args, "--run-name", "quoted"])


def make_quotes(text: str) -> list[tuple[str, Path]]:
    """``make bench|frontier ...`` quoted in a paragraph that names exactly one committed run, with that run."""
    runs = {f"results/{r.parent.name}/{r.name}": r for r in committed_runs()}
    found = []
    for para in re.split(r"\n\s*\n|\n(?=\s*- )", re.sub(r"<!--.*?-->", "", text)):  # a figure's source is no claim
        named = {runs[m] for m in re.findall(r"results/[\w.-]+/[\w.-]+", para) if m in runs}
        if len(named) == 1:
            found += [(m, next(iter(named))) for m in re.findall(r"`(make (?:bench|frontier)[^`]*)`", para)]
    return found


def make_mismatches(make_line: str, run: Path) -> list[str]:
    return [m for m in mismatches(as_steerbench(make_line), run) if not m.startswith("run name")]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_make_command_quoted_beside_a_committed_run_makes_that_run(doc):
    for make_line, run in make_quotes(doc.read_text()):
        assert not make_mismatches(make_line, run), f"{doc.name}: `{make_line}` beside {run}: {make_mismatches(make_line, run)}"


def test_a_stale_make_command_is_caught():
    text = "**Raw strength** (`results/smollm2-135m/raw`, `make bench STRENGTH=raw`, 15.7 min)"
    ((make_line, run),) = make_quotes(text)
    assert any(m.startswith("split:") for m in make_mismatches(make_line, run))  # made before the split
    (good,) = make_quotes("The default run (results/smollm2-135m/default, `make bench`: ...)")
    assert not make_mismatches(*good)
    (stale,) = make_quotes("The default run (results/smollm2-135m/default, `make bench SEEDS=3`: ...)")
    assert any(m.startswith("n_seeds:") for m in make_mismatches(*stale))


# --------------------------------------------------------------- every table column is defined in the docs
def test_every_column_of_a_committed_method_table_is_defined_in_statistics_md():
    defined = (ROOT / "docs" / "statistics.md").read_text()
    columns = set()
    for run in committed_runs():
        header = next(ln for ln in (run / "tables" / "main.md").read_text().splitlines() if ln.startswith("| Method"))
        columns |= {c.strip() for c in header.strip("|").split("|")} - {"Method", "Note"}
    undefined = sorted(c for c in columns if not any(c in row.split("|")[1] for row in defined.splitlines()
                                                    if row.startswith("| ") and row.count("|") > 2))
    assert not undefined, f"columns of committed tables not defined in docs/statistics.md: {undefined}"
