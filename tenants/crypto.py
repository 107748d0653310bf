"""Encryption of secrets at rest.

Keys come from settings.FIELD_ENCRYPTION_KEYS, newest first. New ciphertexts use the
newest key; any configured key decrypts, so a key is rotated without downtime by
putting the new one in front, running `manage.py rotate_encryption_keys`, and
removing the old one once that has finished.
"""

import base64
import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver


class SecretDecryptionError(Exception):
    """A stored secret could not be decrypted with any configured key."""


def derive_key_from_secret_key(secret_key: str) -> str:
    """The embedded run's key when FIELD_ENCRYPTION_KEYS is unset."""
    raw = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"voicedesk field encryption"
    ).derive(secret_key.encode())
    return base64.urlsafe_b64encode(raw).decode()


@functools.cache
def _keyring() -> MultiFernet:
    keys = list(settings.FIELD_ENCRYPTION_KEYS) or [derive_key_from_secret_key(settings.SECRET_KEY)]
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except (ValueError, TypeError) as exc:
        # Never echo the key material itself.
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEYS must be a comma-separated list of Fernet keys "
            "(32 bytes, urlsafe base64; make one with `manage.py generate_encryption_key`)."
        ) from exc


@receiver(setting_changed)
def _reset_keyring(*, setting: str, **kwargs) -> None:
    if setting in {"FIELD_ENCRYPTION_KEYS", "SECRET_KEY"}:
        _keyring.cache_clear()


def encrypt(plaintext: str) -> str:
    return _keyring().encrypt(plaintext.encode()).decode()


def _with_configured_keys(operation, ciphertext: str) -> str:
    try:
        return operation(ciphertext.encode()).decode()
    except InvalidToken:
        raise SecretDecryptionError(
            "A stored secret does not decrypt with any key in FIELD_ENCRYPTION_KEYS."
        ) from None


def decrypt(ciphertext: str) -> str:
    return _with_configured_keys(_keyring().decrypt, ciphertext)


def reencrypt(ciphertext: str) -> str:
    """The same plaintext under the newest key."""
    return _with_configured_keys(_keyring().rotate, ciphertext)


def new_key() -> str:
    return Fernet.generate_key().decode()
