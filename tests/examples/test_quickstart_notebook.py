"""examples/quickstart.ipynb runs top to bottom (nbclient, this interpreter's kernel)."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "quickstart.ipynb"


@pytest.mark.slow
def test_quickstart_notebook_runs(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # Kernel "python3" runs sys.executable (jupyter_client swaps in this interpreter), in
    # tmp_path so the notebook's quickstart-output/ lands there. An error in any cell raises.
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",
        timeout=600,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    out = tmp_path / "quickstart-output"
    for name in ("run/metrics.json", "export/model.safetensors", "report.html"):
        assert (out / name).is_file(), name
    text = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    assert "test accuracy" in text and "report: quickstart-output/report.html" in text
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) >= 3  # data figures and the accuracy curve are shown inline
