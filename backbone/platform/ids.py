"""Strongly typed ids: a 3-letter prefix and 17 random characters from [A-Za-z0-9]."""

from __future__ import annotations

import random
import re
import secrets
import string

ID_ALPHABET = string.ascii_letters + string.digits
ID_LENGTH = 20
# Error ids avoid characters that are easy to confuse when read aloud (the original's choice).
_ERROR_ID_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ123456789"
_ID_PATTERN = re.compile(r"^[A-Za-z0-9]+$")


class Ids:
    """Make new ids; seeded for reproducible data sets, cryptographically random otherwise."""

    def __init__(self, seed: int | None = None) -> None:
        self._random: random.Random = random.SystemRandom() if seed is None else random.Random(seed)

    def new(self, prefix: str) -> str:
        return prefix + "".join(self._random.choices(ID_ALPHABET, k=ID_LENGTH - len(prefix)))

    def secret(self, length: int, alphabet: str = ID_ALPHABET) -> str:
        """Return a random string for secrets (passwords, ownership tokens)."""
        if isinstance(self._random, random.SystemRandom):
            return "".join(secrets.choice(alphabet) for _ in range(length))
        return "".join(self._random.choices(alphabet, k=length))


def new_error_id() -> str:
    return "ERR" + "".join(secrets.choice(_ERROR_ID_ALPHABET) for _ in range(17))


def is_valid_id(value: object, prefix: str) -> bool:
    """Tell whether `value` has the shape of an id of the given kind (the original's IsValid)."""
    return (
        isinstance(value, str)
        and value.startswith(prefix)
        and len(value) <= ID_LENGTH
        and _ID_PATTERN.match(value) is not None
    )
