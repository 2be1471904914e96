"""Figures that README.md and docs/*.md quote from committed runs are generated from the runs' files between
``<!-- figures:... -->`` markers (``python -m bench.tools.readme_figures``), and must equal what the files say."""

from __future__ import annotations

import re

import pytest

from bench.tools import readme_figures as rf

README = rf.ROOT / "README.md"


@pytest.mark.parametrize("doc", rf.documents(), ids=lambda p: p.name)
def test_every_quoted_figure_matches_its_runs_files(doc):
    stale = rf.stale(doc.read_text())
    assert not stale, f"{doc.name}: stale figures (python -m bench.tools.readme_figures):\n" + "\n".join(stale)


def test_the_readme_headline_is_generated_from_the_runs():
    specs = [m["spec"] for m in rf.MARKER.finditer(README.read_text())]
    assert any(s.startswith("main results/") for s in specs), "the README's method table must be a generated block"
    for spec in specs:
        assert (rf.ROOT / spec.split()[1]).is_dir()


def test_a_stale_figure_is_caught():
    """Teeth: change one digit of a generated table, or of an inline figure, and the check names it."""
    text = README.read_text()
    block = next(m for m in rf.MARKER.finditer(text) if m["spec"].startswith("main "))
    effect = re.search(r"-?\d\.\d{3} \[", block["body"]).group(0)
    stale_table = text[:block.start("body")] + block["body"].replace(effect, "9.999 [", 1) + text[block.end("body"):]
    assert any(s.startswith(block["spec"]) for s in rf.stale(stale_table))
    inline = next(m for m in rf.MARKER.finditer(text) if m["spec"].startswith(("effect ", "ci ")))
    stale_inline = text[:inline.start("body")] + "0.999" + text[inline.end("body"):]
    assert [s for s in rf.stale(stale_inline) if s.startswith(inline["spec"])]
    assert rf.refresh(stale_inline) == text  # and the generator puts the true figure back


@pytest.mark.parametrize("spec, needle", [
    ("main results/no-such-run", "is not a folder"),
    ("effect results/smollm2-135m/default no-such-method", "no method 'no-such-method'"),
    ("nosuchkind results/smollm2-135m/default antipasto", "unknown figure kind"),
    ("frontier results/smollm2-135m/default", "not a frontier run"),
])
def test_a_bad_marker_fails_in_one_line(spec, needle):
    with pytest.raises(rf.FigureError, match=re.escape(needle)):
        rf.render(spec)


def test_the_frontier_table_reads_its_main_budget_from_the_run(tmp_path, monkeypatch):
    """Rows are ordered by the Effect at the run's main budget (``status.json``'s ``_frontier.main``), and a
    discrete method shows only there: moving the main budget moves both."""
    import json
    import shutil

    from bench.tools import figure_sources

    run = "results/smollm2-135m/frontier"
    shutil.copytree(rf.ROOT / run, tmp_path / run)
    status = json.loads((tmp_path / run / "status.json").read_text())
    status["_frontier"]["main"] = 0.03
    (tmp_path / run / "status.json").write_text(json.dumps(status))
    monkeypatch.setattr(figure_sources, "ROOT", tmp_path)
    readers = (figure_sources.run_status, figure_sources.frontier_points, figure_sources.numbers)
    for reader in readers:
        reader.cache_clear()
    try:
        rows = [line for line in rf.frontier_table(run).splitlines() if line.startswith("| prompting")]
    finally:
        for reader in readers:
            reader.cache_clear()
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert cells[1] == "" and cells[2] != "" and cells[3] == ""  # KL 0.01, 0.03 (the main one now), 0.1
