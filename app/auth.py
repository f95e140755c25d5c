"""The admin bearer token of the repository endpoints (HTTP and gRPC alike)."""

from __future__ import annotations

import hmac

from pydantic import SecretStr

from app.exceptions import ForbiddenError, UnauthorizedError


def check_admin(configured: SecretStr | None, authorization: str | None) -> None:
    """Let an ``Authorization`` header (or gRPC metadata) through, or raise.

    Raises
    ------
    ForbiddenError
        No token is configured, or the one sent is not it (compared in
        constant time).
    UnauthorizedError
        No credentials at all.
    """
    if configured is None:
        raise ForbiddenError(
            "the repository endpoints are off: no MNIST_SERVE_ADMIN_TOKEN is set"
        )
    if authorization is None:
        raise UnauthorizedError("send Authorization: Bearer <admin token>")
    scheme, _, given = authorization.partition(" ")
    expected = configured.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode("utf-8", "replace"), expected
    ):
        raise ForbiddenError("the bearer token is not the admin token")
