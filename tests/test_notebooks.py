"""The notebooks: executed end to end on the bundled examples (quick mode), and stored without outputs.

The kernel is this interpreter (``sys.executable -m ipykernel_launcher``) through a kernel spec
written into a temporary folder, so the test works in any fresh virtual environment with the
``test`` extra installed, without ``ipykernel install``.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
REPO = NOTEBOOKS.parent
KERNEL_NAME = "collapse-probe-tests"

EXPECTED: dict[str, list[str]] = {
    "01_audit_a_checkpoint.ipynb": [
        "Auditing: SYNTHETIC quick-mode checkpoint",
        "format: dino, network: teacher",
        r"head 'head': K=512, D=16",
        r" 0.025  0.9996875      20        3.91%",
        r"group of \d+ prototypes: ",
        r"report\.json",
        r" teacher / head: 20 of 512 unique at eps 0\.025 \(3\.91 %\)",
        r" student / head: \d+ of 512 unique at eps 0\.025",
    ],
    "02_compare_the_dino_family.ipynb": [
        "NOT THE PAPER'S MODELS: no released checkpoint is in the cache",
        r"\| DINO ViT-S/16 \| 65536 \| 1078 \| 1\.6 \| - \| - \| not in the cache \|",
        r"\| iBOT-vMF ViT-B/16 \| 8192 \| 1170 \| 14\.3 \| - \| - \| not in the zoo \|",
        r"\| synthetic DINO, K=1024 \(quick mode\) / head \(teacher\) \| 1024 \| - \| - \| 30 \| 2\.9 \| bundled example \|",
        r"\| synthetic DINO, K=1024 \(quick mode\) / head \(student\) \| 1024 \| - \| - \| \d+ \|",
    ],
    "03_repair_with_koleo_proto.ipynb": [
        "SYNTHETIC collapsed head: K=512, 20 planted duplicate groups",
        r"KoLeo-Proto of the collapsed head: \d+\.\d{3}",
        r"DINO \+ KoLeo-Proto: unique at eps 0\.025 before -> after",
        r"collapsed \(input\)\s+20\s+20\s+20\s+20\s+20",
        r"KoLeo-Proto term: first step",
        r"trained on digits, dino-digits-koleo \(student\): \d+/\d+ unique at eps 0\.025"
        r"|The trained digits examples are not part of this installation: skipped\.",
    ],
}


def notebook_paths() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def test_every_notebook_is_covered():
    assert [p.name for p in notebook_paths()] == sorted(EXPECTED)


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.stem)
def test_notebooks_in_git_have_no_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert notebook.nbformat == 4
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, path.name
        assert "attachments" not in cell or not cell.attachments


@pytest.fixture(scope="module")
def kernel_specs(tmp_path_factory):
    from jupyter_client.kernelspec import KernelSpecManager

    folder = tmp_path_factory.mktemp("kernels")
    spec_dir = folder / KERNEL_NAME
    spec_dir.mkdir()
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "collapse-probe tests", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return KernelSpecManager(kernel_dirs=[str(folder)])


def _text(notebook) -> str:
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                parts.append(output.text)
            elif output.output_type in ("execute_result", "display_data"):
                parts.append(output.get("data", {}).get("text/plain", ""))
                parts.append(output.get("data", {}).get("text/markdown", ""))
    return "\n".join(parts)


def execute(path: Path, kernel_specs, workdir: Path, monkeypatch, *, cache: Path) -> str:
    """Run ``path`` in a fresh kernel (quick mode, cache ``cache``); return its text outputs."""
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    # The kernel inherits this environment: quick mode, its own cache (nothing is downloaded),
    # the repository importable, no GUI backend.
    monkeypatch.setenv("COLLAPSE_PROBE_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("COLLAPSE_PROBE_CACHE", str(cache))
    monkeypatch.delenv("COLLAPSE_PROBE_NOTEBOOK_DOWNLOAD", raising=False)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    notebook = nbformat.read(path, as_version=4)
    manager = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=kernel_specs)
    client = NotebookClient(notebook, km=manager, timeout=600, allow_errors=False,
                            resources={"metadata": {"path": str(workdir)}})
    client.execute()
    images = [o for c in notebook.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert images, f"{path.name} shows no figure"
    return _text(notebook)


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.stem)
def test_notebook_runs_on_the_bundled_examples(path, kernel_specs, tmp_path, monkeypatch):
    text = execute(path, kernel_specs, tmp_path, monkeypatch, cache=tmp_path / "empty-cache")
    for pattern in EXPECTED[path.name]:
        assert re.search(pattern, text), f"{path.name}: {pattern!r} not in the outputs:\n{text[:3000]}"
    if path.name.startswith("03_"):
        # The repair works: KoLeo-Proto separates more of the 20 planted groups than the loss alone.
        alone = int(re.search(r"^DINO loss only\s+(\d+)", text, re.M).group(1))
        koleo = int(re.search(r"^DINO \+ KoLeo-Proto\s+(\d+)", text, re.M).group(1))
        assert koleo > 2 * alone >= 2 * 20


def test_family_notebook_measures_a_release_found_in_the_cache(kernel_specs, tmp_path, monkeypatch):
    from collapse_probe.examples.synthetic import write_synthetic_dino
    from collapse_probe.zoo import ZOO

    # A stand-in for the released DINO ViT-S/16 file, where `zoo fetch` would have put it.
    zoo = tmp_path / "cache" / "zoo"
    zoo.mkdir(parents=True)
    write_synthetic_dino(zoo / ZOO["dino_vits16"].filename, num_prototypes=640, num_groups=16, dim=16)
    text = execute(NOTEBOOKS / "02_compare_the_dino_family.ipynb", kernel_specs, tmp_path, monkeypatch,
                   cache=tmp_path / "cache")
    assert "MEASURED: released checkpoints found in the cache (dino_vits16)." in text
    assert "NOT THE PAPER'S MODELS" not in text
    assert "| DINO ViT-S/16 | 65536 | 1078 | 1.6 | 16 | 2.5 | released `dino_vits16` |" in text
    assert "| DINO ResNet-50 | 60000 | 984 | 1.6 | - | - | not in the cache |" in text
    assert "bundled example" not in text
