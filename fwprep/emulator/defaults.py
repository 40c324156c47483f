"""The emulator's defaults that its command line shows without starting a server."""

from __future__ import annotations

__all__ = ["DEFAULT_API_KEY"]

DEFAULT_API_KEY = "fw-emulator-key"
"""The key an emulator accepts unless told otherwise (the emulator's own, not a Fireworks key)."""
