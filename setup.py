"""Build step: generate the gRPC modules from app/grpc_api/protos/*.proto.

Everything else about the package is in pyproject.toml. The generated modules
(``*_pb2.py``, ``*_pb2.pyi``, ``*_pb2_grpc.py``) are never committed: every
build and install (``pip install .``, ``pip install -e .``, the wheel, the
container image) writes them next to their ``.proto`` with grpcio-tools'
protoc, a build requirement.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
PROTOS = ROOT / "app" / "grpc_api" / "protos"


def generate_protos() -> None:
    """Run protoc on every .proto, writing Python modules beside it."""
    import grpc_tools
    from grpc_tools import protoc

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    for proto in sorted(PROTOS.glob("*.proto")):
        relative = proto.relative_to(ROOT).as_posix()
        status = protoc.main(
            [
                "grpc_tools.protoc",
                f"-I{ROOT}",
                f"-I{well_known}",
                f"--python_out={ROOT}",
                f"--pyi_out={ROOT}",
                f"--grpc_python_out={ROOT}",
                relative,
            ]
        )
        if status != 0:
            raise SystemExit(f"protoc failed on {relative} (status {status})")


class BuildPy(build_py):
    """build_py that first generates the gRPC modules (editable installs too)."""

    def run(self) -> None:
        generate_protos()
        super().run()


setup(cmdclass={"build_py": BuildPy})
