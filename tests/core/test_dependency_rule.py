"""core/ must stay usable without the HTTP stack (CONVENTIONS.md section 1)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import core
from tests.conftest import PROJECT_ROOT

FORBIDDEN = ("fastapi", "starlette", "pydantic", "uvicorn", "app")


def test_importing_every_core_module_loads_no_http_stack() -> None:
    # walk_packages reaches into sub-packages (core.train.*) too.
    modules = [m.name for m in pkgutil.walk_packages(core.__path__, "core.")]
    assert {"core.network", "core.catalogue", "core.train.cli"} <= set(modules)
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
