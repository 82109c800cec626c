"""The one error the object-store client raises: a fixed, client-safe text plus the
library's detail for the log (which may name hosts and keys, never credentials)."""

from __future__ import annotations

from argon.errors import ArgonError


class ObjectStoreError(ArgonError):
    """A bucket operation failed.

    ``kind`` says what to check: ``unreachable`` (endpoint, network, server down),
    ``denied`` (credentials, bucket policy), ``not_found`` (the bucket or key is missing),
    ``conflict`` (the key holds other content), ``config`` (a bad URL or variable),
    ``other``. ``message`` is safe to show a client; ``detail`` is for the log.
    """

    code = "OBJECT_STORE_ERROR"
    status = 503

    def __init__(self, message: str, *, kind: str = "other", detail: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.detail = detail
