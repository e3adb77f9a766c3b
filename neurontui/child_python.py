"""Start a module of this installation in a Python child, never code from the working directory.

`python -m workloads` puts the working directory first on the child's import path, so a
planted `workloads/__main__.py` (or a `torch.py`) there would run. Children start isolated
(`-I`: no working directory on the path, no PYTHON* variables, no user site processing) and
get, through one variable, the import path this process resolved: the directories its own
packages came from first, then its own absolute sys.path entries. So the child imports what
the parent imported: the same checkout under PYTHONPATH, a virtual environment, pip --user
installs. `-u` replaces PYTHONUNBUFFERED, which `-I` ignores.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import workloads

import neurontui

PATH_VARIABLE = "NEURONTUI_CHILD_PATH"
# Runs in the child before anything can be imported from its path: puts the parent's path
# first, then runs the module named by the first argument as __main__.
BOOTSTRAP = (
    "import os, sys\n"
    f"wanted = [p for p in os.environ.pop({PATH_VARIABLE!r}, '').split(os.pathsep) if os.path.isabs(p)]\n"
    "sys.path[:] = wanted + [p for p in sys.path if p not in wanted]\n"
    "module = sys.argv.pop(1)\n"
    "import runpy\n"
    "runpy.run_module(module, run_name='__main__', alter_sys=True)\n"
)


def package_roots() -> list[str]:
    """The directories the parent's own `neurontui` and `workloads` packages were imported from."""
    roots: list[str] = []
    for package in (workloads, neurontui):
        root = str(Path(package.__file__).resolve().parent.parent)
        if root not in roots:
            roots.append(root)
    return roots


def child_path() -> list[str]:
    """The import path a child gets: package roots, then the parent's absolute entries but the cwd."""
    roots = package_roots()
    cwd = os.getcwd()
    return roots + [p for p in sys.path if os.path.isabs(p) and p != cwd and p not in roots]


def module_argv(python: str, module: str, *args: str) -> list[str]:
    """The argument list that runs `python -m module args...` without the working directory."""
    return [python, "-I", "-u", "-c", BOOTSTRAP, module, *args]


def child_env(env: dict[str, str]) -> dict[str, str]:
    """`env` plus the import path the bootstrap installs."""
    return dict(env, **{PATH_VARIABLE: os.pathsep.join(child_path())})
