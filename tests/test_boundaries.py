"""House rules: neurontui never imports torch; workloads never imports textual;
only neurontui.tui may import textual (the headless path runs without it)."""
import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

PROBE = r"""
import importlib, json, pkgutil, sys
blocked, package, skip = sys.argv[1].split(","), sys.argv[2], sys.argv[3]

class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ImportError(f"blocked import of {name}")

sys.meta_path.insert(0, Blocker())
pkg = importlib.import_module(package)
failed = {}
for info in pkgutil.walk_packages(pkg.__path__, package + "."):
    if info.name == package + ".__main__" or (skip and info.name.startswith(skip)):
        continue
    try:
        importlib.import_module(info.name)
    except ImportError as exc:
        failed[info.name] = str(exc)
print(json.dumps({"failed": failed, "loaded": sorted(m for m in sys.modules if m.split(".")[0] in blocked)}))
"""


def probe(blocked, package, skip=""):
    out = subprocess.run([sys.executable, "-c", PROBE, blocked, package, skip], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


@pytest.mark.parametrize("blocked,package,skip", [
    ("torch,torchvision,torch_neuron,torch_neuronx", "neurontui", ""),
    ("textual,textual_plotext", "workloads", ""),
    ("textual,textual_plotext", "neurontui", "neurontui.tui"),
])
def test_package_imports_without(blocked, package, skip):
    result = probe(blocked, package, skip)
    assert result == {"failed": {}, "loaded": []}


def test_import_contracts_hold():
    """The layers and boundaries written in pyproject.toml ([tool.importlinter]), as `lint-imports` checks them."""
    lint = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
                                  "sys.exit(lint_imports_command())"]
    out = subprocess.run(lint, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


def test_the_registry_is_the_only_list_of_models():
    from neurontui.cli import build_parser
    from neurontui.tui.screens.model_picker import MODELS as PICKER_MODELS
    from workloads.models import REGISTRY

    choices = next(a.choices for a in build_parser()._actions if a.dest == "model")
    assert tuple(choices) == tuple(REGISTRY) == PICKER_MODELS
