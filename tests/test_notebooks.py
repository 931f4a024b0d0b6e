"""The tutorials in notebooks/ run top to bottom without an error, in a scratch working folder.

Every notebook is executed with nbclient in a kernel running *this* interpreter (the project's
virtual environment, whatever other Jupyter kernels the machine has), with the current working
directory set to a temporary folder, so the notebooks' outputs (`outputs/...`) never land in the
checkout. The notebooks find the project's assets through `core.__file__`. Kernels run with one
OpenMP thread (PIXIT_NOTEBOOK_THREADS=N to change it): about 15-40 s per notebook here.
Also checked: the notebooks are committed without outputs and each starts with a markdown cell.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
EXPECTED = [
    "01_quickstart.ipynb",
    "02_correct_and_retrain.ipynb",
    "03_train_from_scratch.ipynb",
    "04_ssl_front_ends.ipynb",
    "05_pruning.ipynb",
]
# what each notebook must have produced (under outputs/<notebook name>/ in its working folder)
PRODUCES = {
    "01_quickstart.ipynb": ["demo000.rttm", "demo000.json", "demo000/SPEAKER_00.wav"],
    "02_correct_and_retrain.ipynb": ["demo000.corrected.rttm", "demo000.train.uem", "finetune/model/model.safetensors",
                                     "finetune/metrics.csv"],
    "03_train_from_scratch.ipynb": ["train/manifest.csv", "run/model/model.safetensors", "run/metrics.csv"],
    "04_ssl_front_ends.ipynb": ["run-wavlm/model/model.safetensors", "run-hubert/model/model.safetensors"],
    "05_pruning.ipynb": ["pruned/model/model.safetensors", "pruned/pruning.json", "pruned/history.csv"],
}
CELL_TIMEOUT = 600  # seconds per cell; the notebooks take about a minute each on 2 CPU cores


def _notebooks() -> list[Path]:
    return sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def test_all_tutorials_are_there():
    assert [p.name for p in _notebooks()] == EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_is_clean(name):
    """Committed without outputs, starts with a markdown cell that says what it teaches, valid nbformat."""
    nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    nbformat.validate(nb)
    assert nb.cells[0].cell_type == "markdown" and "What you learn" in nb.cells[0].source
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name}: outputs committed"
            assert cell.source.strip(), f"{name}: empty code cell"


@pytest.fixture
def kernel_env(tmp_path, monkeypatch):
    """A `python3` kernelspec that runs sys.executable, found first through JUPYTER_PATH."""
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (project venv)", "language": "python",
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # no debugger warning on kernel start
    # one thread per kernel: on a small shared machine two OpenMP threads are many times slower as
    # soon as another process holds a core (measured here: 4 fine-tuning steps 71 s -> 4 s)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(name, os.environ.get("PIXIT_NOTEBOOK_THREADS", "1"))
    work = tmp_path / "work"
    work.mkdir()
    return work


@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_runs(name, kernel_env):
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import sys; print(sys.executable)"))
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(kernel_env)}})
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError (with the cell and the traceback) on any error
    elapsed = time.perf_counter() - start
    print(f"{name}: {elapsed:.1f} s")

    executable = "".join(o.get("text", "") for o in nb.cells[-1].outputs).strip()
    assert Path(executable).resolve() == Path(sys.executable).resolve(), "the kernel ran another interpreter"
    out = kernel_env / "outputs" / name[: -len(".ipynb")]
    missing = [path for path in PRODUCES[name] if not (out / path).is_file()]
    assert not missing, f"{name} did not write {missing} under its working folder"
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            assert output.get("output_type") != "error"
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                assert "Traceback" not in output.get("text", ""), f"{name}: a traceback on stderr:\n{output['text']}"
