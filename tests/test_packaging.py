"""A built wheel carries every module and the package data, so a non-editable install works too."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_carries_every_module_and_the_data_files(tmp_path):
    source = tmp_path / "src"  # build from a copy: an in-tree build would leave build/ and egg-info behind
    source.mkdir()
    for item in ("pyproject.toml", "setup.py", "steerbench.py", "README.md", "bench", "methods", "data"):
        (shutil.copytree if (ROOT / item).is_dir() else shutil.copy)(ROOT / item, source / item)  # noqa: E501
    plugin = source / "methods" / "folder_plugin"  # a new folder plugin: found, with no packaging line
    plugin.mkdir()
    (plugin / "__init__.py").write_text("")
    (plugin / "parts.py").write_text("")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(source)], check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("steerbench-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {str(p.relative_to(ROOT)) for d in ("bench", "methods") for p in (ROOT / d).rglob("*.py")}
    expected |= {f"bench/data/{p.name}" for p in (ROOT / "data").glob("*.json")}  # data/ ships as bench/data/
    assert {"methods/innerpissa/layer.py", "bench/data/heldout_nll.json"} <= expected
    assert expected <= names, sorted(expected - names)
    assert {"methods/folder_plugin/__init__.py", "methods/folder_plugin/parts.py"} <= names
    assert "steerbench.py" in names  # the Python API, a top-level module
