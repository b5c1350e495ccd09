"""qa: quality-assurance gates for fine-tuned image classifiers.

    import qa
    result = qa.run("suites/release.yaml", "checkpoints/candidate.pt")  # a qa.Result

The API (qa.api) is loaded on first use, so `import qa`, which every qa module and command
runs, stays instant and imports neither torch nor the report renderers.
"""

__version__ = "0.1.0"

# name -> the module that defines it, imported when the name is first asked for
_LAZY = {
    "run": "qa.api",
    "Result": "qa.api",
    "Check": "qa.api",
    "Threshold": "qa.api",
    "InputError": "qa.errors",
}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    """`qa.run`, `qa.Result`, ...: imported from their module on first access (PEP 562)."""
    if name not in _LAZY:
        raise AttributeError(f"module 'qa' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
