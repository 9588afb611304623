"""The session-id rule shared with the fleet.

A session is known by its *hashed id*: the lowercase hex SHA-256 of the Django session key. The
fleet accepts either form wherever it takes a session id (64 lowercase hex characters are taken as
the hashed id, anything else is hashed by the fleet); this package always sends the hashed id, so
the raw session key never leaves the site. The fleet's Redis key is ``session:{hashed_id}``.
"""

from __future__ import annotations

import hashlib
import re

_HASHED = re.compile(r"[0-9a-f]{64}")


def session_hash(key: str) -> str:
    """The hashed id of a Django session key: lowercase hex SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def is_hashed_id(value: str) -> bool:
    """Whether the fleet takes ``value`` as a hashed id as it is (64 lowercase hex characters)."""
    return _HASHED.fullmatch(value) is not None
