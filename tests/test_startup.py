"""What an audit imports: nothing heavy it does not use (start-up is most of a small audit)."""

from __future__ import annotations

import subprocess
import sys


def _last_line(code: str) -> str:
    """The last line ``code`` prints in a fresh interpreter (so ``sys.modules`` starts empty)."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def test_audit_example_imports_no_scipy_stats_sparse_or_matplotlib():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from collapse_probe.cli.app import app\n"
        "result = CliRunner().invoke(app, ['audit', '--example'])\n"
        "assert result.exit_code == 0, result.output\n"
        "print(sorted(m for m in ('scipy.stats', 'scipy.sparse', 'matplotlib', 'sklearn')"
        " if m in sys.modules))\n"
    )
    assert _last_line(code) == "[]"


def test_small_head_dedup_imports_no_scipy():
    code = (
        "import sys, numpy as np\n"
        "from collapse_probe import sweep\n"
        "x = np.random.default_rng(0).standard_normal((1024, 64))\n"
        "x[1:300] = x[0] + 1e-4 * x[1:300]\n"
        "r = sweep(x, eps=[0.025, 0.5])\n"
        "assert r[0].unique == 1024 - 299, r[0].unique\n"
        "print(sorted(m for m in sys.modules if m == 'scipy' or m.startswith('scipy.')))\n"
    )
    assert _last_line(code) == "[]"


def test_help_imports_no_torch_faiss_scipy_or_matplotlib():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from collapse_probe.cli.app import app\n"
        "for args in (['--help'], ['audit', '--help'], ['finetune', '--help']):\n"
        "    result = CliRunner().invoke(app, args)\n"
        "    assert result.exit_code == 0, result.output\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in"
        " ('torch', 'faiss', 'scipy', 'matplotlib', 'sklearn')))\n"
    )
    assert _last_line(code) == "[]"
