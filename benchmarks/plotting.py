"""matplotlib for the benchmarks' plots, drawn to files only, or a word on how to get it."""

from __future__ import annotations

from typing import Any


def pyplot() -> Any | None:
    """``matplotlib.pyplot`` on a file-only backend; ``None`` (and a hint) when not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("  (matplotlib is not installed: no plot; pip install -e '.[bench]')")
        return None
    return plt
