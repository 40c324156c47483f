"""Catalogues for the emulator: an account of N numbered models, a demo account, or a file.

An emulator with a catalogue knows exactly those models: it lists them
(ListModels pages, ``totalSize``), serves them, and answers 404 for any
other. ``fwprep emulator --models 1000`` or ``--models models.jsonl`` serves one
from a shell; ``EmulatorConfig(catalog=numbered_catalog(1000))`` from Python.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import attrs

from fwprep.names import ModelRef, model_name

__all__ = ["CatalogEntry", "CatalogError", "demo_catalog", "numbered_catalog", "read_catalog"]


def _str_tuple(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


@attrs.frozen
class CatalogEntry:
    """A model the emulator knows, when it is given a catalog.

    Attributes:
        supported_precisions: precisions the model is already prepared for.
        calibrated: the model's ``calibrated`` field.
        kind: the model's ``kind`` (``HF_BASE_MODEL``, ``HF_PEFT_ADDON``, ...).
        state: the model's ``state`` (``READY``, ``UPLOADING``, ...).
        fail_preparation: when set, every preparation of this model fails
            after the delay: its ``status`` becomes ``fail_code`` with this
            message and no precision is added.
        fail_code: the google.rpc code name of that failure.
    """

    supported_precisions: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
    calibrated: bool = False
    kind: str = "HF_BASE_MODEL"
    state: str = "READY"
    fail_preparation: str | None = None
    fail_code: str = "INTERNAL"


class CatalogError(ValueError):
    """A catalogue file that cannot be read, with ``path:line`` where there is a line."""


def numbered_catalog(
    count: int,
    *,
    account_id: str = "acme",
    prepared_every: int | None = None,
    precision: str = "FP8",
) -> dict[str, CatalogEntry]:
    """``count`` models ``accounts/{account_id}/models/m0``, ``m1``, ...

    With ``prepared_every=k``, every k-th model (``m0``, ``mk``, ...) is
    already prepared for ``precision``.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    prepared = CatalogEntry(supported_precisions=(precision,))
    plain = CatalogEntry()
    return {
        model_name(account_id, f"m{i}"): (
            prepared if prepared_every and i % prepared_every == 0 else plain
        )
        for i in range(count)
    }


_DEMO_FAMILIES = ("llama-3-8b", "qwen2-7b", "mistral-7b", "gemma-2-9b", "deepseek-coder")
_DEMO_TASKS = ("support", "legal", "code", "search", "retail", "summarise", "triage")
_DEMO_KINDS = ("HF_PEFT_ADDON", "HF_BASE_MODEL", "HF_PEFT_ADDON", "CUSTOM_MODEL")
_DEMO_PRECISIONS: tuple[tuple[str, ...], ...] = (
    (),
    ("FP16",),
    ("FP16", "FP8"),
    ("BF16",),
    ("FP16", "FP8", "FP4"),
    ("FP16",),
)


def demo_catalog(account_id: str = "demo") -> dict[str, CatalogEntry]:
    """The demo account of ``--emulate``: 36 models of mixed kinds, states and precisions.

    Fine-tunes named like ``llama-3-8b-support-v2`` (PEFT add-ons, base
    models, custom uploads), most ``READY``, a few ``UPLOADING``; some already
    prepared for FP8, most not, so ``fwprep models --missing fp8`` has
    something to show. The same every time.
    """
    catalog: dict[str, CatalogEntry] = {}
    for i in range(36):
        family = _DEMO_FAMILIES[i % len(_DEMO_FAMILIES)]
        task = _DEMO_TASKS[i % len(_DEMO_TASKS)]
        name = model_name(account_id, f"{family}-{task}-v{1 + i // 12}")
        catalog[name] = CatalogEntry(
            supported_precisions=_DEMO_PRECISIONS[i % len(_DEMO_PRECISIONS)],
            kind=_DEMO_KINDS[i % len(_DEMO_KINDS)],
            state="UPLOADING" if i % 9 == 4 else "READY",
        )
    return catalog


def read_catalog(path: str | os.PathLike[str]) -> dict[str, CatalogEntry]:
    """Models from a JSON Lines file of Model objects (``name``, ``supportedPrecisions``, ...).

    Each line is one model as the API returns it; fields other than
    ``name``, ``supportedPrecisions``, ``calibrated``, ``kind`` and ``state``
    are ignored.

    Raises:
        CatalogError: the file cannot be read, or a line is not such an
            object (``path:line: why``).
    """
    catalog: dict[str, CatalogEntry] = {}
    try:
        with Path(path).open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                name, entry = _entry(line, f"{path}:{number}")
                catalog[name] = entry
    except OSError as exc:
        raise CatalogError(f"{path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise CatalogError(f"{path}: not UTF-8 text") from None
    return catalog


def _entry(line: str, where: str) -> tuple[str, CatalogEntry]:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise CatalogError(f"{where}: not JSON ({exc.msg})") from None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise CatalogError(f"{where}: expected a Model object with a name")
    try:
        name = str(ModelRef.parse(data["name"]))
    except ValueError as exc:
        raise CatalogError(f"{where}: {exc}") from None
    precisions = data.get("supportedPrecisions", [])
    if not isinstance(precisions, list) or not all(isinstance(p, str) for p in precisions):
        raise CatalogError(f"{where}: supportedPrecisions must be a list of strings")
    kind, state = data.get("kind", "HF_BASE_MODEL"), data.get("state", "READY")
    if not isinstance(kind, str) or not isinstance(state, str):
        raise CatalogError(f"{where}: kind and state must be strings")
    return name, CatalogEntry(
        supported_precisions=tuple(precisions),
        calibrated=bool(data.get("calibrated", False)),
        kind=kind,
        state=state,
    )
