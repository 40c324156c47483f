"""Catalogues for the emulator: an account of N numbered models, or models read from a file.

An emulator with a catalogue knows exactly those models: it lists them
(ListModels pages, ``totalSize``), serves them, and answers 404 for any
other. ``fwprep emulator --models 1000`` or ``--models models.jsonl`` serves one
from a shell; ``EmulatorConfig(catalog=numbered_catalog(1000))`` from Python.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from fwprep.emulator.app import CatalogEntry
from fwprep.names import ModelRef, model_name

__all__ = ["CatalogError", "numbered_catalog", "read_catalog"]


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


def read_catalog(path: str | os.PathLike[str]) -> dict[str, CatalogEntry]:
    """Models from a JSON Lines file of Model objects (``name``, ``supportedPrecisions``, ...).

    Each line is one model as the API returns it; fields other than
    ``name``, ``supportedPrecisions`` and ``calibrated`` are ignored.

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
    return name, CatalogEntry(
        supported_precisions=tuple(precisions), calibrated=bool(data.get("calibrated", False))
    )
