"""The cluster keys of session sync, read from the files `sync.keys` names; an error names
the key's field (`sync.keys[0].file`) and what is wrong with the file."""

from __future__ import annotations

import binascii

from dplb.config import ConfigError, SyncSection

KEY_BYTES = 32


def load_keys(settings: SyncSection) -> tuple[list[tuple[int, bytes]], int]:
    """The keys as (id, 32 bytes) and the id to send with (`send_key`, else the highest)."""
    keys: list[tuple[int, bytes]] = []
    errors: list[tuple[str, str]] = []
    for i, key in enumerate(settings.keys):
        where = f"sync.keys[{i}].file"
        try:
            text = key.file.read_text().strip()
        except OSError as exc:
            errors.append((where, f"cannot read {key.file}: {exc.strerror or exc}"))
            continue
        try:
            secret = binascii.unhexlify(text)
        except (binascii.Error, ValueError):
            errors.append((where, f"{key.file} must hold {KEY_BYTES * 2} hex digits"))
            continue
        if len(secret) != KEY_BYTES:
            errors.append(
                (
                    where,
                    f"{key.file} holds {len(secret)} bytes, a key is {KEY_BYTES}",
                )
            )
            continue
        keys.append((key.id, secret))
    if errors:
        raise ConfigError(errors)
    send = settings.send_key if settings.send_key is not None else max(k for k, _ in keys)
    return keys, send
