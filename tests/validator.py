"""The W3C HTML validator (vnu), run on files: the npm package `vnu-jar` on the Java installed.

`.ci/run` installs it into `.vnu/`; elsewhere VNU_JAR may point at a vnu.jar. Without it the
validity tests are skipped locally and fail in CI, as the browser tests do without Chromium.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from forms_server.config.group import PROJECT_ROOT

VNU_JAR = Path(
    os.environ.get("VNU_JAR", PROJECT_ROOT / ".vnu/node_modules/vnu-jar/build/dist/vnu.jar")
)


def require_validator() -> str:
    java = shutil.which("java")
    if java is not None and VNU_JAR.is_file():
        return java
    message = (
        f"The HTML validator needs Java and {VNU_JAR}: "
        "run `npm install --prefix .vnu vnu-jar` (or set VNU_JAR)."
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def html_errors(paths: list[Path]) -> list[str]:
    """Every error vnu reports for these files, one line each ("file":line.col: error: ...)."""
    java = require_validator()
    result = subprocess.run(
        [java, "-jar", str(VNU_JAR), "--errors-only", "--format", "gnu", *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    if result.returncode != 0 and not errors:
        pytest.fail(f"vnu failed without reporting errors: {result.stdout}")
    return errors
