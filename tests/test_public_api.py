from __future__ import annotations

import inspect
import types

import fwprep
import fwprep.emulator


def _public(module: types.ModuleType) -> set[str]:
    """Names the module defines or re-exports from fwprep (not what it merely imports)."""
    return (
        {
            name
            for name, value in vars(module).items()
            if not name.startswith("_")
            and not isinstance(value, types.ModuleType)
            and (getattr(value, "__module__", None) or "fwprep").startswith("fwprep")
            and name != "annotations"
        }
        | ({"__version__"} if hasattr(module, "__version__") else set())
        | (TYPE_ALIASES & set(vars(module)))
    )


# Aliases of typing constructs carry typing's __module__, so they are named here.
TYPE_ALIASES = {"ItemLike", "ErrorFormat"}


def test_all_lists_exactly_the_public_names() -> None:
    assert set(fwprep.__all__) == _public(fwprep)
    assert sorted(fwprep.__all__) == list(fwprep.__all__)


def test_emulator_all_lists_exactly_the_public_names() -> None:
    assert set(fwprep.emulator.__all__) == _public(fwprep.emulator)


def test_every_public_name_has_a_docstring() -> None:
    missing = []
    for module in (fwprep, fwprep.emulator):
        for name in module.__all__:
            value = getattr(module, name)
            if inspect.isclass(value) or inspect.isfunction(value):
                if not inspect.getdoc(value):
                    missing.append(name)
                for attr, member in vars(value).items() if inspect.isclass(value) else []:
                    if attr.startswith("_") or not callable(member):
                        continue
                    if not inspect.getdoc(member):
                        missing.append(f"{name}.{attr}")
    assert missing == []
