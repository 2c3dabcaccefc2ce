"""The package declares what it imports, and carries its licence."""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib.metadata import packages_distributions

from packaging.requirements import Requirement

from forms_server.config.group import PROJECT_ROOT

PYPROJECT = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def imported_top_level_modules() -> set[str]:
    found = set()
    for path in (PROJECT_ROOT / "forms_server").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"forms_server"}


def test_every_module_the_server_imports_is_a_declared_dependency() -> None:
    declared = {
        Requirement(entry).name.lower().replace("_", "-")
        for entry in PYPROJECT["project"]["dependencies"]
    }
    owners = packages_distributions()
    undeclared = {
        module: owners.get(module, ["?"])
        for module in imported_top_level_modules()
        if not any(
            distribution.lower().replace("_", "-") in declared
            for distribution in owners.get(module, [])
        )
    }
    assert undeclared == {}


def test_the_licence_the_package_names_is_the_file_it_ships() -> None:
    project = PYPROJECT["project"]
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
    assert (PROJECT_ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    requires = [Requirement(entry) for entry in PYPROJECT["build-system"]["requires"]]
    setuptools = next(entry for entry in requires if entry.name == "setuptools")
    assert setuptools.specifier.contains("77")
    assert not setuptools.specifier.contains("76")
