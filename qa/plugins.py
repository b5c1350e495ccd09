"""Suite plugins: Python modules a suite names, imported before its checks are validated, so that
they can register perturbations (`qa.perturb.register`) and check kinds (`qa.checks.register`).

    plugins: [my_perturbations, my_pkg.corruptions]    # module names, as `import` takes them

Importing a module runs its code with the importing user's privileges, like loading a pickled
checkpoint, so `load_suite` refuses a suite with plugins unless the caller trusts them
(`qa run --trust-plugins`, `qa validate --trust-plugins`, `qa.run(trust_plugins=True)`).
While they are imported, the suite file's folder is first on `sys.path` (and removed after), so
a module beside the suite is found as a data path beside it would be; an installed package or
one on PYTHONPATH is found as usual. A module already imported is not imported again.

A run records what code ran: result.json's `environment.plugins` lists each module, its file
and the sha256 of its code (`provenance`). The cache (qa.passes.view_key) keys a view made by
a perturbation from outside qa on that perturbation's code (`perturbation_code`), as qa's
version pins its own, so an edited plugin never reads back the views of its earlier code.
"""

import contextlib
import functools
import hashlib
import importlib
import marshal
import os
import re
import sys
import types
from pathlib import Path

from qa import perturb
from qa.errors import first_line

# a module name as `import` takes it: dotted identifiers, never relative
MODULE_NAME = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"


def module_name(text: str) -> str:
    """`text` if it is a module name (MODULE_NAME), else ValueError saying what was expected:
    the validator of each `plugins:` entry."""
    if re.fullmatch(MODULE_NAME, text):
        return text
    raise ValueError(
        f"expected a module name (dotted identifiers, as `import` takes them), found {text!r}"
    )


def import_plugins(names: list[str], suite_path: str | Path) -> list[tuple[int, str]]:
    """Import every module of `names` (the suite's `plugins:`), the suite's folder first on
    sys.path; return the failures as (index, one-line reason), none when all were imported.

    A module that raises while it is imported (SystemExit too) is a failure, never a
    traceback: its reason names the exception and the first line of its message.
    """
    failures = []
    with _first_on_path(os.path.abspath(os.path.dirname(suite_path) or ".")):
        importlib.invalidate_caches()  # a module written since the last import is found
        for i, name in enumerate(names):
            try:
                importlib.import_module(name)
            except (Exception, SystemExit) as exc:
                failures.append(
                    (i, f"cannot import {name!r}: {type(exc).__name__}: {first_line(exc)}")
                )
    return failures


@contextlib.contextmanager
def _first_on_path(folder: str):
    """`folder` first on sys.path for the duration; removed after (once, if still there)."""
    sys.path.insert(0, folder)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(folder)


def provenance(names: list[str]) -> list[dict]:
    """What each imported plugin module is: {"module", "file" (its file, None for one without),
    "sha256" (its code's, `module_digest`)}, in the suite's order."""
    out = []
    for name in names:
        module = sys.modules[name]
        out.append(
            {
                "module": name,
                "file": getattr(module, "__file__", None),
                "sha256": module_digest(module),
            }
        )
    return out


@functools.lru_cache(maxsize=64)
def module_digest(module: types.ModuleType) -> str | None:
    """The sha256 of a module's code: of its file's bytes (what `sha256sum FILE` prints), or,
    for a package, of every Python file under its folders (each relative path and its bytes'
    sha256, in path order); None for a module with no file (built in, or made in memory)."""
    folders = getattr(module, "__path__", None)
    if folders is None:
        file = getattr(module, "__file__", None)
        return hashlib.sha256(Path(file).read_bytes()).hexdigest() if file else None
    h = hashlib.sha256()
    for folder in map(Path, folders):
        for file in sorted(folder.rglob("*.py")):
            h.update(f"{file.relative_to(folder).as_posix()}\0".encode())
            h.update(hashlib.sha256(file.read_bytes()).digest())
    return h.hexdigest()


def perturbation_code(name: str) -> str | None:
    """A digest of the code of the registered perturbation `name`, for the cache key of its
    views; None for qa's own, which qa's version pins.

    The digest is `module_digest` of the top-level package (or module) that defines the
    function, so an edit anywhere in it changes it; for a function defined where no file is
    (a notebook cell), the digest of its compiled code; None when neither can be had.
    """
    fn = perturb.PERTURBATIONS[name].fn
    top = (getattr(fn, "__module__", None) or "").partition(".")[0]
    if top == "qa":
        return None
    module = sys.modules.get(top)
    digest = module_digest(module) if module is not None else None
    if digest is not None:
        return digest
    code = getattr(fn, "__code__", None)
    return hashlib.sha256(marshal.dumps(code)).hexdigest() if code is not None else None
