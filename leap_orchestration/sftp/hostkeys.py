"""Persistent host keys, generated on first start: Ed25519, and RSA 2048 for older clients."""

from __future__ import annotations

import os
from pathlib import Path

import asyncssh

HOST_KEYS = (("ssh_host_ed25519_key", "ssh-ed25519", {}), ("ssh_host_rsa_key", "ssh-rsa", {"key_size": 2048}))


def load_or_create(directory: Path) -> list[asyncssh.SSHKey]:
    directory.mkdir(parents=True, exist_ok=True)
    keys = []
    for file_name, algorithm, options in HOST_KEYS:
        path = directory / file_name
        if not path.exists():
            key = asyncssh.generate_private_key(algorithm, **options)
            fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(key.export_private_key())
            os.replace(path.with_suffix(".tmp"), path)
        keys.append(asyncssh.read_private_key(path))
    return keys


def fingerprints(keys: list[asyncssh.SSHKey]) -> list[str]:
    """One line per key, as partners compare them: '<algorithm> <bits> SHA256:<base64>'."""
    lines = []
    for key in keys:
        bits = getattr(key.pyca_key, "key_size", 256)
        lines.append(f"{key.get_algorithm()} {bits} {key.get_fingerprint('sha256')}")
    return lines
