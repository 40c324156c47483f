"""Model references: ``accounts/{account_id}/models/{model_id}`` and bare ids."""

from __future__ import annotations

import os
import re

import attrs

from fwprep.errors import InvalidModelError

__all__ = ["ModelRef", "validate_id"]

_ID_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
_ID_RULE = "1-63 characters of a-z, 0-9 and '-', not starting or ending with '-'"


def model_name(account_id: str, model_id: str) -> str:
    """``accounts/{account_id}/models/{model_id}``, from ids already known to be valid."""
    return f"accounts/{account_id}/models/{model_id}"


def validate_id(value: str, what: str = "id") -> str:
    """Return ``value`` if it is a valid Fireworks resource id, else raise.

    Ids are 1-63 characters of ``a-z``, ``0-9`` and ``-`` and do not start or
    end with ``-``. The message says what is wrong, so a user who typed
    ``My_Model`` learns that upper case and ``_`` are not allowed.

    Raises:
        InvalidModelError: (a :class:`ValueError`) when the id breaks the rules.
    """
    if isinstance(value, str) and _ID_RE.fullmatch(value):
        return value
    raise InvalidModelError(f"invalid {what} {value!r}: {_why(value)}")


def _why(value: object) -> str:
    if not isinstance(value, str):
        return f"expected text, got {type(value).__name__}"
    if not value:
        return "it is empty"
    if len(value) > 63:
        return f"it is {len(value)} characters long; ids are {_ID_RULE}"
    bad = sorted(
        {c for c in value if not ((c.islower() and c.isascii()) or c.isdigit() or c == "-")}
    )
    if bad:
        shown = " ".join(repr(c) for c in bad[:5])
        return f"it contains {shown}; ids are {_ID_RULE}"
    return f"ids are {_ID_RULE}"


def _default_account(explicit: str | None) -> str | None:
    return explicit or os.environ.get("FIREWORKS_ACCOUNT_ID") or None


@attrs.frozen(order=True)
class ModelRef:
    """A model in an account: the ``accounts/{account_id}/models/{model_id}`` name.

    Both ids are validated when the object is made, so a bad id is refused
    before any request is sent. ``str(ref)`` gives the full resource name.

    Build one with :meth:`parse`, which takes what users write::

        >>> str(ModelRef.parse("accounts/acme/models/llama-ft-7"))
        'accounts/acme/models/llama-ft-7'
        >>> str(ModelRef.parse("llama-ft-7", default_account="acme"))
        'accounts/acme/models/llama-ft-7'
    """

    account_id: str = attrs.field(validator=lambda _i, _a, v: validate_id(v, "account id"))
    model_id: str = attrs.field(validator=lambda _i, _a, v: validate_id(v, "model id"))

    @classmethod
    def parse(cls, text: str | ModelRef, default_account: str | None = None) -> ModelRef:
        """Read a full resource name or a bare model id.

        A bare id takes its account from ``default_account``, else from the
        ``FIREWORKS_ACCOUNT_ID`` environment variable. Surrounding spaces are
        ignored.

        Raises:
            InvalidModelError: (a :class:`ValueError`) for a malformed name, a
                bad id, or a bare id with no account to put it in.
        """
        if isinstance(text, ModelRef):
            return text
        if not isinstance(text, str):
            raise InvalidModelError(f"a model must be text, got {type(text).__name__}")
        name = text.strip()
        if not name:
            raise InvalidModelError("the model is empty")
        if "/" in name:
            parts = name.split("/")
            if len(parts) != 4 or parts[0] != "accounts" or parts[2] != "models":
                raise InvalidModelError(
                    f"invalid model name {text!r}: expected accounts/ACCOUNT_ID/models/MODEL_ID "
                    "or a bare model id"
                )
            return cls(parts[1], parts[3])
        account = _default_account(default_account)
        if account is None:
            validate_id(name, "model id")
            raise InvalidModelError(
                f"model {name!r} has no account: write accounts/ACCOUNT_ID/models/{name}, "
                "pass an account id, or set FIREWORKS_ACCOUNT_ID"
            )
        return cls(account, name)

    @property
    def name(self) -> str:
        """The full resource name, ``accounts/{account_id}/models/{model_id}``."""
        return model_name(self.account_id, self.model_id)

    def __str__(self) -> str:
        return self.name
