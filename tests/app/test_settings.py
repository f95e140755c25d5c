"""app.settings and the mnist-serve command line: read once, handed down whole."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app import cli
from app.settings import ENV_PREFIX, Settings, export


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """An environment of this test's own: export() writes to it freely."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    monkeypatch.setattr(os, "environ", environ)
    return monkeypatch


def test_export_hands_every_value_to_a_fresh_read(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    given = Settings(
        weights=tmp_path / "w.pkl",
        port=9001,
        workers=3,
        max_batch_size=7,
        body_timeout=2.5,
        access_log=True,
        log_format="json",
    )
    export(given)
    assert Settings() == given
    # None values are removed, so the default comes back.
    export(Settings(weights=None))
    assert Settings().weights is None


def test_flags_win_over_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("MNIST_SERVE_PORT", "7000")
    clean_env.setenv("MNIST_SERVE_MAX_BATCH_SIZE", "5")
    assert Settings(port=7001).port == 7001
    assert Settings(port=7001).max_batch_size == 5


@pytest.mark.parametrize(
    ("argv", "env", "says"),
    [
        (
            ["--workers", "0"],
            {},
            "bad setting workers (--workers or MNIST_SERVE_WORKERS)",
        ),
        (["--port", "70000"], {}, "bad setting port"),
        ([], {"MNIST_SERVE_MAX_BATCH_SIZE": "many"}, "bad setting max_batch_size"),
        (["--weights", "/nonexistent/w.pkl"], {}, "cannot load weights"),
    ],
)
def test_bad_configuration_is_one_line_and_exit_2(
    clean_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    env: dict[str, str],
    says: str,
) -> None:
    for key, value in env.items():
        clean_env.setenv(key, value)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("mnist-serve: ")
    assert says in err[0]
