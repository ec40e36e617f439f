"""Who may manage what on a shared (workshop) server: participants and the presenter.

No accounts: each browser holds a random *token* (the app keeps it in the address, ``?me=…``), and
the participant's owner id — what the run store records on their runs, studies and suites, and what
the presenter limits count per — is a hash of it, so showing an owner id never reveals a token.

An :class:`Actor` is who acts: a participant manages only what they own; the presenter (unlocked
by ``MTL_LAB_PRESENTER_PASSCODE``) manages everything. With no passcode configured the server is
single-user, as it always was: everyone manages everything.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from mtl_core.errors import MTLError

__all__ = ["AccessError", "Actor", "new_token", "valid_token", "owner_of_token", "passcode_matches"]

_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")


class AccessError(MTLError, PermissionError):
    """An actor tried to manage what belongs to another participant."""


def new_token() -> str:
    """A fresh participant token: 24 URL-safe characters (144 random bits)."""
    return secrets.token_urlsafe(18)


def valid_token(text: object) -> bool:
    """Whether ``text`` has the form of a participant token (16–64 letters, digits, ``_`` or ``-``)."""
    return isinstance(text, str) and _TOKEN.fullmatch(text) is not None


def owner_of_token(token: str) -> str:
    """The owner id of the participant holding ``token`` (``p-`` and 16 hex digits of its SHA-256)."""
    if not valid_token(token):
        raise ValueError("`token` must be 16–64 letters, digits, `_` or `-`")
    return "p-" + hashlib.sha256(f"mtl-lab-participant:{token}".encode()).hexdigest()[:16]


def passcode_matches(given: str | None, configured: str | None) -> bool:
    """Whether ``given`` is the configured presenter passcode, compared in constant time; never true
    when no passcode is configured or none was given."""
    if not configured or not given:
        return False
    return hmac.compare_digest(given.encode("utf-8"), configured.encode("utf-8"))


@dataclass(frozen=True)
class Actor:
    """Who acts: ``owner`` is their owner id; ``manages_all`` is true for the presenter, and for
    everyone on a single-user server (no presenter passcode configured)."""

    owner: str
    manages_all: bool = False

    def may_manage(self, owner: str | None) -> bool:
        """Whether this actor may cancel, delete or remove what ``owner`` owns."""
        return self.manages_all or owner == self.owner

    def check(self, owner: str | None, what: str) -> None:
        """Raise :class:`AccessError` (a sentence naming ``what``) unless :meth:`may_manage` ``owner``."""
        if not self.may_manage(owner):
            raise AccessError(f"{what} belongs to another participant; only they or the presenter can change it.")
