"""Puts a copy of the handbook's sources into the wheel, so an installed package can build and
serve the handbook from any folder (forms_server/config/env.py looks there when there is no
checkout). Everything else about the package is in pyproject.toml."""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HANDBOOK_SOURCES = ("mkdocs.yml", "docs", "overrides", "includes", "hooks")


class BuildWithHandbook(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return  # an editable install reads the checkout itself
        root = Path(__file__).resolve().parent
        target = Path(self.build_lib) / "forms_server" / "handbook_sources"
        target.mkdir(parents=True, exist_ok=True)
        for name in HANDBOOK_SOURCES:
            source = root / name
            if source.is_dir():
                shutil.copytree(
                    source,
                    target / name,
                    dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                )
            else:
                shutil.copy2(source, target / name)


setup(cmdclass={"build_py": BuildWithHandbook})
