"""The index errors: each message says what is wrong and how to fix it."""
from __future__ import annotations

FIX = "rebuild it with `policyqa ingest …`"


class IndexStoreError(Exception):
    """Base of the index errors."""


class IndexNotFoundError(IndexStoreError):
    """No index at the given directory."""


class IndexMismatchError(IndexStoreError):
    """The index was built by another schema or model than the one in use."""


class IndexCorruptError(IndexStoreError):
    """A file of the index is missing, truncated or unreadable."""


class IndexLockedError(IndexStoreError):
    """Another build holds the index lock."""
