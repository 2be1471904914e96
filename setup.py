"""The package list, found rather than written out (everything else is in pyproject.toml).

Every package under ``bench/`` and ``methods/`` is found, so a folder plugin (``methods/my_method/``) needs no
packaging line; ``bench.data`` is added by name: it is the top-level ``data/`` folder, mapped in pyproject.toml.
"""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["bench", "bench.*", "methods", "methods.*"]), "bench.data"])
