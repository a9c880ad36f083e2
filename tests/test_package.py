"""The public surface: every exported name resolves, and nothing heavy is imported up front."""

import subprocess
import sys

import pytest

import collapse_probe


@pytest.mark.parametrize("name", sorted(collapse_probe._EXPORTS))
def test_every_export_resolves(name):
    assert getattr(collapse_probe, name) is not None
    assert name in dir(collapse_probe)


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        collapse_probe.nope  # noqa: B018


def test_package_and_cli_import_no_heavy_library():
    code = ("import sys, collapse_probe, collapse_probe.cli.app; "
            "print(sorted(m for m in ('torch', 'faiss', 'matplotlib', 'sklearn', 'scipy') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_version_flag():
    out = subprocess.run([sys.executable, "-m", "collapse_probe", "--version"], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == f"collapse-probe {collapse_probe.__version__}"
