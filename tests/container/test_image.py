"""What the image holds: its labels, exactly the locked packages, no packaging or
build tools, bytecode compiled at build time, a non-root user, a root
filesystem that can be read-only."""

from __future__ import annotations

import hashlib
import json
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.utils import canonicalize_name

from tests.container.conftest import (
    IMAGE,
    LABEL,
    Container,
    docker,
    inspect,
    needs_image,
)

pytestmark = needs_image()

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements" / "runtime.txt"


def in_image(code: str) -> str:
    """Run Python code in a throwaway container of the image (no network)."""
    return docker("run", "--rm", "--label", LABEL, "--network", "none",
                  "--read-only", "--entrypoint", "python", IMAGE, "-c", code)  # fmt: skip


def test_labels_record_version_lock_and_commit():
    labels = inspect(IMAGE)["Config"]["Labels"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert labels["org.opencontainers.image.version"] == project["version"]
    assert (
        labels["io.mnist-serve.lock.sha256"]
        == hashlib.sha256(LOCK.read_bytes()).hexdigest()
    )
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if not head:
        pytest.skip("not a git checkout: the revision label cannot be compared")
    assert labels["org.opencontainers.image.revision"] in {head, f"{head}-dirty"}


def locked_versions(environment: dict[str, str]) -> dict[str, str]:
    """Name -> version of every pin in the lock whose marker holds there."""
    pins: dict[str, str] = {}
    for line in LOCK.read_text().splitlines():
        if not line or line[0] in " #":
            continue
        requirement, _, marker = line.rstrip(" \\").partition(";")
        name, _, version = requirement.strip().partition("==")
        if marker.strip() and not Marker(marker.strip()).evaluate(environment):
            continue
        pins[canonicalize_name(name)] = version
    return pins


def test_installed_packages_are_exactly_the_lock():
    found = json.loads(
        in_image(
            "import importlib.metadata as m, json, platform, sys\n"
            "env = {'python_full_version': platform.python_version(),\n"
            "       'python_version': '%d.%d' % sys.version_info[:2],\n"
            "       'sys_platform': sys.platform, 'platform_system': platform.system(),\n"
            "       'platform_machine': platform.machine(),\n"
            "       'implementation_name': sys.implementation.name,\n"
            "       'platform_python_implementation': platform.python_implementation()}\n"
            "dists = {d.metadata['Name']: d.version for d in m.distributions()}\n"
            "print(json.dumps({'env': env, 'dists': dists}))"
        )
    )
    installed = {canonicalize_name(k): v for k, v in found["dists"].items()}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    expected = locked_versions(found["env"]) | {"mnist-serve": project["version"]}
    assert installed == expected


PACKAGING_PROBE = """
import importlib.util, json, os, shutil, subprocess, sys
find = ("import importlib.util as u, json; print(json.dumps([m for m in "
        "('pip', 'setuptools', 'wheel', 'pkg_resources', 'ensurepip') if u.find_spec(m)]))")
modules = {}
# The virtualenv's interpreter and the one it was made from: the virtualenv
# hides the system's site-packages, but the image would still hold them.
for exe in (sys.executable, sys._base_executable):
    out = subprocess.run([exe, "-c", find], capture_output=True, text=True, check=True)
    modules[exe] = json.loads(out.stdout)
print(json.dumps({
    "modules": {exe: found for exe, found in modules.items() if found},
    "programs": [p for p in ("pip", "pip3", "gcc", "cc", "make", "git") if shutil.which(p)],
    "paths": [p for p in ("/src", "/opt/build", "/root/.cache/pip") if os.path.exists(p)],
}))
"""


def test_no_packaging_or_build_tools():
    found = json.loads(in_image(PACKAGING_PROBE))
    assert found == {"modules": {}, "programs": [], "paths": []}


def test_every_module_is_compiled_to_bytecode():
    # A read-only container cannot write .pyc files: anything not compiled at
    # build time would be compiled again at every start.
    missing = json.loads(
        in_image(
            "import importlib.util, json, os, pathlib\n"
            "root = pathlib.Path('/opt/venv/lib')\n"
            "print(json.dumps([str(p) for p in root.rglob('*.py')\n"
            "    if not os.path.exists(importlib.util.cache_from_source(str(p)))]))"
        )
    )
    assert missing == []


def test_runs_as_uid_and_gid_10001(container: Container):
    assert inspect(IMAGE)["Config"]["User"] == "10001:10001"
    status = container.exec("cat", "/proc/1/status")
    ids = {
        line.split(":")[0]: line.split()[1:]
        for line in status.splitlines()
        if line.startswith(("Uid:", "Gid:"))
    }
    assert ids == {"Uid": ["10001"] * 4, "Gid": ["10001"] * 4}
    assert container.exec("id", "-un") == "mnist"


def test_root_filesystem_is_read_only_and_tmp_is_writable(container: Container):
    assert inspect(container.id)["HostConfig"]["ReadonlyRootfs"] is True
    done = subprocess.run(
        ["docker", "exec", container.id, "touch", "/opt/venv/x"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "Read-only file system" in done.stderr
    container.exec("touch", "/tmp/x")  # the tmpfs
