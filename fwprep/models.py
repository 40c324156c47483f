"""Value types: what fwprep is asked to do, what happened, and what the API returns.

All are frozen ``attrs`` classes with no I/O and no serialization inside
them; :mod:`fwprep._convert` turns them to and from the wire format.
"""

from __future__ import annotations

import attrs

from fwprep.errors import FwprepError
from fwprep.names import ModelRef
from fwprep.precision import Precision

__all__ = ["Model", "ModelStatus", "PrepareItem", "PrepareOutcome"]


def _to_precision(value: Precision | str | None) -> Precision | None:
    return None if value is None else Precision.parse(value)


def _to_model(value: ModelRef | str) -> ModelRef:
    return ModelRef.parse(value)


@attrs.frozen
class PrepareItem:
    """One unit of work: prepare ``model`` for ``precision``.

    ``model`` is a :class:`~fwprep.ModelRef` or the text :meth:`ModelRef.parse
    <fwprep.ModelRef.parse>` reads (a full name, or a bare id in the account
    of ``FIREWORKS_ACCOUNT_ID``); ``precision`` a :class:`~fwprep.Precision` or
    its name in any case (``"fp8"``). Both are checked here, so a bad one
    raises :class:`~fwprep.InputError` before anything is sent.
    ``precision=None`` leaves the field out of the request, which lets the API
    choose its default. ``source`` and ``line`` say where the item was read
    from (a manifest path and its line number) so reports can point back at it.

    Two items with the same :attr:`key` ask for the same thing.
    """

    model: ModelRef = attrs.field(converter=_to_model)
    precision: Precision | None = attrs.field(default=None, converter=_to_precision)
    read_mask: str | None = None
    source: str | None = attrs.field(default=None, eq=False)
    line: int | None = attrs.field(default=None, eq=False)

    @property
    def key(self) -> str:
        """The identity of the work: ``accounts/a/models/m@FP8``.

        With no precision it is the bare resource name. Reports, resume and
        duplicate detection are keyed by it, never by position in a manifest.
        """
        if self.precision is None:
            return self.model.name
        return f"{self.model.name}@{self.precision.value}"


@attrs.frozen
class PrepareOutcome:
    """What became of one :class:`PrepareItem`.

    Attributes:
        item: the item this outcome is for.
        ok: ``True`` when the API accepted the prepare (HTTP 200), or answered
            409 ``ALREADY_EXISTS``, which means there was nothing left to do.
        error: the error that ended the item when ``ok`` is ``False``.
        attempts: how many requests were sent for it (1 without retries; 0
            when it failed before anything was sent).
        elapsed: seconds from the first attempt to the outcome, backoff
            included, time queued for a free slot excluded.
        http_status: the status of the last answer, ``None`` if none arrived.
    """

    item: PrepareItem
    ok: bool
    error: FwprepError | None = None
    attempts: int = 0
    elapsed: float = 0.0
    http_status: int | None = None


@attrs.frozen
class ModelStatus:
    """The result of a model's last operation (``google.rpc.Status``-like).

    ``code`` is a code name such as ``"OK"`` or ``"INTERNAL"``; a missing
    status, or one with code ``OK``, means the last operation did not fail.
    """

    code: str = "OK"
    message: str = ""

    @property
    def ok(self) -> bool:
        """``True`` unless the code names a failure."""
        return self.code in ("OK", "")


@attrs.frozen
class Model:
    """The fields of a Fireworks Model resource that fwprep reads.

    A real response carries many more fields; they are ignored. Precision
    lists hold the wire strings as sent, so a precision this version of
    fwprep does not know yet is kept, and ``Precision.FP8 in
    model.supported_precisions`` works because a :class:`Precision` equals its
    wire string.
    """

    name: str = ""
    display_name: str | None = None
    state: str = "STATE_UNSPECIFIED"
    status: ModelStatus | None = None
    kind: str | None = None
    calibrated: bool | None = None
    supported_precisions: tuple[str, ...] = ()
    supported_precisions_with_calibration: tuple[str, ...] = ()
    precisions: tuple[str, ...] = ()

    def has_precision(self, precision: Precision | str) -> bool:
        """Whether the model is prepared for ``precision``.

        Looks in ``supportedPrecisions`` and in the older ``precisions``
        field, which some API versions use instead.
        """
        wanted = Precision.parse(precision).value
        return wanted in self.supported_precisions or wanted in self.precisions

    @property
    def failed(self) -> bool:
        """``True`` when the model's status reports a failed last operation."""
        return self.status is not None and not self.status.ok
