"""Reader passphrases: salted scrypt hashes (memory-hard), never the passphrase itself.

A hash is stored as ``scrypt$<n>$<r>$<p>$<salt hex>$<hash hex>`` so the cost can be raised later
without breaking older hashes. The parameters (n = 2**14, r = 8, p = 1: 16 MiB and about 50 ms
per check here) follow the scrypt paper's interactive-login setting and RFC 7914.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from studies.errors import StudyError

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
HASH_BYTES = 32
MIN_LENGTH = 8
MAX_LENGTH = 1024


def check_new_passphrase(passphrase: str) -> None:
    """StudyError unless ``passphrase`` is acceptable (8 to 1024 characters, not blank)."""
    if not passphrase.strip():
        raise StudyError("the passphrase is empty")
    if len(passphrase) < MIN_LENGTH:
        raise StudyError(
            f"the passphrase is too short: at least {MIN_LENGTH} characters (got {len(passphrase)})"
        )
    if len(passphrase) > MAX_LENGTH:
        raise StudyError(f"the passphrase is too long: at most {MAX_LENGTH} characters")


def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        passphrase.encode("utf-8"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        maxmem=2 * 128 * r * (n + p + 2),
        dklen=HASH_BYTES,
    )


def hash_passphrase(passphrase: str) -> str:
    """A fresh salted scrypt hash of ``passphrase`` (StudyError if it is not acceptable)."""
    check_new_passphrase(passphrase)
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _derive(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def passphrase_matches(stored: str, passphrase: str) -> bool:
    """Whether ``passphrase`` matches a stored hash (False for a malformed hash)."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return False
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, expected = bytes.fromhex(parts[4]), bytes.fromhex(parts[5])
    except ValueError:
        return False
    if not (2 <= n <= 2**20 and 1 <= r <= 32 and 1 <= p <= 16) or len(passphrase) > MAX_LENGTH:
        return False
    try:
        digest = _derive(passphrase, salt, n, r, p)
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(digest, expected)
