"""The analyst notebooks: each runs top to bottom on the bundled fixtures, and is stored without outputs.

Each notebook is a jupytext pair (``notebooks/jupytext.toml``): the percent-format script ``NN-name.py``,
which ruff lints like the package, and the ``.ipynb`` Jupyter opens. The pair must hold the same cells, so
an edit to one side that was not synced to the other fails here rather than reaching a reader.

Every notebook's last cell asserts its own numbers against ``albstats report``'s JSON (or the compare
verdict); a failing cell fails the test. The kernel is the interpreter running the tests (a kernelspec
written into a temporary directory points at ``sys.executable``), started in ``notebooks/`` so the
notebooks' relative paths resolve, with ``MPLBACKEND=Agg`` and a private ingest cache.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import jupytext
import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from jupytext.config import load_jupytext_config
from nbclient import NotebookClient

#: Jupyter kernels executing the notebooks (and jupytext/ruff over them).
pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("*.ipynb"))
EXPECTED = {
    "01-quickstart.ipynb",
    "02-slo-and-error-budget.ipynb",
    "03-where-do-5xx-come-from.ipynb",
    "04-retry-before-after.ipynb",
}
#: Wall-clock budget for one whole notebook (each runs in well under a minute on an idle machine).
NOTEBOOK_TIMEOUT = 240.0
#: Environment that would point a notebook elsewhere than the fixtures (a developer's shell may set it).
ALBSTATS_ENV = (
    "ALBSTATS_LOGS",
    "ALBSTATS_SINCE",
    "ALBSTATS_UNTIL",
    "ALBSTATS_SLO",
    "ALBSTATS_LATENCY_THRESHOLD",
    "ALBSTATS_BEFORE",
    "ALBSTATS_AFTER",
    "ALBSTATS_SIM_REQUESTS",
)


def test_the_four_notebooks_exist():
    assert {p.name for p in NOTEBOOKS} >= EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_without_outputs_and_parameterised(path: Path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: cell {cell.id} has stored outputs"
            assert cell.execution_count is None, f"{path.name}: cell {cell.id} has an execution count"
        assert "widgets" not in cell.metadata and "execution" not in cell.metadata
    assert "widgets" not in nb.metadata
    code = [c for c in nb.cells if c.cell_type == "code"]
    first, last = code[0], code[-1]
    # the parameter cell comes first and switches engines through the environment
    assert "parameters" in first.metadata.get("tags", [])
    for setting in (
        'ENGINE = os.environ.get("ALBSTATS_ENGINE", "local")',
        'os.environ.get("ALBSTATS_LOGS"',
        "ALBSTATS_ATHENA_DATABASE",
        "ALBSTATS_ATHENA_WORKGROUP",
        "ALBSTATS_ATHENA_OUTPUT_LOCATION",
        "ALBSTATS_ATHENA_REGION",
    ):
        assert setting in first.source, f"{path.name}: parameter cell lacks {setting}"
    assert "assert " in last.source, f"{path.name}: the last cell must assert something"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")


def test_every_notebook_is_a_jupytext_pair():
    """Each .ipynb has its percent script beside it and nothing else is there: jupytext's own configuration
    lookup (what Jupyter and ``jupytext --sync`` use) pairs them."""
    scripts = {p.stem for p in NB_DIR.glob("*.py")}
    assert scripts == {p.stem for p in NOTEBOOKS}, "notebooks/*.py and notebooks/*.ipynb must come in pairs"
    for path in NOTEBOOKS:
        assert load_jupytext_config(str(path)).default_formats(str(path)) == "ipynb,py:percent"


def _cells(nb: nbformat.NotebookNode) -> list[tuple[str, str, list[str]]]:
    return [(c.cell_type, c.source, list(c.metadata.get("tags", []))) for c in nb.cells]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_script_and_notebook_hold_the_same_cells(path: Path):
    """Read both sides with jupytext: same cells in the same order, same sources, same tags (the
    ``parameters`` tag papermill looks for lives in the script's ``# %% tags=[...]`` line)."""
    script = path.with_suffix(".py")
    from_py, from_ipynb = _cells(jupytext.read(script)), _cells(jupytext.read(path))
    hint = f"notebooks/{path.name} and {script.name} differ: run .venv/bin/jupytext --sync notebooks/{script.name}"
    assert len(from_py) == len(from_ipynb), f"{hint} ({len(from_py)} cells against {len(from_ipynb)})"
    for i, (a, b) in enumerate(zip(from_py, from_ipynb, strict=True)):
        assert a == b, f"{hint} (cell {i})"


def _ruff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_scripts_pass_ruff():
    """The scripts are linted and formatted under the project's ruff settings (pyproject.toml): they are
    in ruff's file set (and the .ipynb are not, so nothing is linted twice), and both checks are clean."""
    listed = {Path(line).resolve() for line in _ruff("check", "--show-files", "notebooks").stdout.splitlines()}
    assert {p.resolve() for p in NB_DIR.glob("*.py")} <= listed
    assert not {p for p in listed if p.suffix == ".ipynb"}
    for args in (("check", "--no-fix", "notebooks"), ("format", "--check", "notebooks")):
        run = _ruff(*args)
        assert run.returncode == 0, f"ruff {' '.join(args)}:\n{run.stdout}{run.stderr}"


@pytest.fixture(scope="session")
def warm_cache(tmp_path_factory) -> Path:
    """An ingest cache holding the fixtures, made once per test process: each notebook gets a copy, so it
    reads the same files without parsing them again (the cold path is the engine tests' business)."""
    import albstats

    db = tmp_path_factory.mktemp("albstats-cache") / "cache"
    with albstats.connect(str(ROOT / "fixtures" / "AWSLogs"), db=db) as eng:
        eng.query("data_span")
    return db


@pytest.fixture
def kernel_env(tmp_path, monkeypatch, warm_cache):
    """A kernelspec for this interpreter, and an environment that keeps the run local and private."""
    kdir = tmp_path / "kernels" / "python3"
    kdir.mkdir(parents=True)
    (kdir / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "albstats (test)",
                "language": "python",
            }
        )
    )
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("ALBSTATS_ENGINE", "local")
    for name in ALBSTATS_ENV:
        monkeypatch.delenv(name, raising=False)
    shutil.copytree(warm_cache, tmp_path / "cache")
    monkeypatch.setenv("ALBSTATS_CACHE_DB", str(tmp_path / "cache"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("PYTHONWARNINGS", "ignore::DeprecationWarning")
    return KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")])


def run_notebook(path: Path, ksm: KernelSpecManager) -> nbformat.NotebookNode:
    """Execute a notebook in notebooks/ with the test kernel; a failing cell raises CellExecutionError."""
    nb = nbformat.read(path, as_version=4)
    km = KernelManager(kernel_name="python3", kernel_spec_manager=ksm)
    assert km.kernel_spec.argv[0] == sys.executable
    deadline = time.monotonic() + NOTEBOOK_TIMEOUT
    client = NotebookClient(
        nb,
        km=km,
        kernel_name="python3",
        startup_timeout=60,
        allow_errors=False,
        # one budget for the whole notebook: each cell may use what the previous ones left
        timeout_func=lambda cell: max(1, int(deadline - time.monotonic())),
        resources={"metadata": {"path": str(NB_DIR)}},
    )
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    # the charts really render (inline PNGs), not just a Figure repr
    assert any("image/png" in o.get("data", {}) for o in outputs), f"{path.name}: no chart was drawn"
    return nb


def printed(cell: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path: Path, kernel_env: KernelSpecManager):
    nb = run_notebook(path, kernel_env)
    last = [c for c in nb.cells if c.cell_type == "code"][-1]
    assert printed(last).startswith("OK:"), f"{path.name}: last cell printed {printed(last)!r}"


def test_parameters_come_from_the_environment(kernel_env: KernelSpecManager, monkeypatch):
    """A window and another SLO through the environment: the given-window path, and alerts that really fire."""
    monkeypatch.setenv("ALBSTATS_SINCE", "2026-11-16T10:00:00Z")
    monkeypatch.setenv("ALBSTATS_UNTIL", "2026-11-16T14:00:00Z")
    monkeypatch.setenv("ALBSTATS_SLO", "99.5")
    nb = run_notebook(NB_DIR / "02-slo-and-error-budget.ipynb", kernel_env)
    text = "\n".join(printed(c) for c in nb.cells if c.cell_type == "code")
    assert "window 2026-11-16 10:00:00+00:00 .. 2026-11-16 14:00:00+00:00" in text
    assert "less than 6 h of data" in text and "OK: success rate" in text
    strict = [o for c in nb.cells if c.cell_type == "code" and c.source.startswith("STRICT") for o in c.outputs]
    assert "True" in strict[0]["data"]["text/plain"]  # the incident pages at 99.9 %: the check compared firings


def test_docs_api_example_runs(tmp_path, monkeypatch, warm_cache):
    """The API guide's example (docs/guide/python-api.md) runs as written, from the repository root."""
    text = (ROOT / "docs" / "guide" / "python-api.md").read_text(encoding="utf-8")
    section = text.split("<!-- section: api -->", 1)[1].split("<!-- /section: api -->", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert blocks, "the API guide has no python example"
    monkeypatch.chdir(ROOT)
    shutil.copytree(warm_cache, tmp_path / "cache")
    monkeypatch.setenv("ALBSTATS_CACHE_DB", str(tmp_path / "cache"))
    code = blocks[0].replace('"overview.png"', repr(str(tmp_path / "overview.png")))
    namespace: dict = {}
    exec(compile(code, "python-api.md", "exec"), namespace)  # our own docs, run as written
    assert (tmp_path / "overview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert namespace["rep"]["requests"] == int(namespace["err"]["requests"].sum()) > 0


@pytest.mark.parametrize(
    "name", ["01-quickstart.ipynb", "02-slo-and-error-budget.ipynb", "03-where-do-5xx-come-from.ipynb"]
)
def test_one_setting_switches_to_athena(name: str, kernel_env: KernelSpecManager, monkeypatch):
    """ALBSTATS_ENGINE=athena plus the Athena variables: the notebook opens an Athena engine with them and a
    bounded window (the last 7 days). Only the opening cells run: no AWS call is made before the first query."""
    monkeypatch.setenv("ALBSTATS_ENGINE", "athena")
    settings = {
        "ALBSTATS_ATHENA_DATABASE": "weblogs",
        "ALBSTATS_ATHENA_TABLE": "alb_prod",
        "ALBSTATS_ATHENA_WORKGROUP": "analysts",
        "ALBSTATS_ATHENA_OUTPUT_LOCATION": "s3://results-bkt/athena/",
        "ALBSTATS_ATHENA_REGION": "eu-west-1",
    }
    for k, v in settings.items():
        monkeypatch.setenv(k, v)
    nb = nbformat.read(NB_DIR / name, as_version=4)
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    nb.cells = nb.cells[: code[1] + 1]  # the parameter cell and the cell that opens the engine
    nb.cells.append(
        nbformat.v4.new_code_cell(
            "print(eng.name, eng.database, eng.table, eng.workgroup, eng.output_location, eng.region, "
            "(until - since).days, until.tzinfo is not None)"
        )
    )
    km = KernelManager(kernel_name="python3", kernel_spec_manager=kernel_env)
    NotebookClient(nb, km=km, timeout=60, startup_timeout=60, resources={"metadata": {"path": str(NB_DIR)}}).execute()
    out = printed(nb.cells[-1]).split()
    assert out == ["athena", "weblogs", "alb_prod", "analysts", "s3://results-bkt/athena/", "eu-west-1", "7", "True"]
