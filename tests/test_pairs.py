"""Every notebook has a jupytext py:percent twin with the same cells, and the runner executes from it."""
import shutil
from pathlib import Path

import jupytext
import nbformat
import pytest

from wsss import run_notebooks
from wsss.pairs import pair_difference, source_notebook, twin, write_twin

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_notebook_is_in_sync_with_its_py_source(notebook):
    assert twin(notebook).is_file(), f"{notebook.name} has no .py twin"
    assert pair_difference(notebook) is None, pair_difference(notebook)


def test_the_twins_are_percent_scripts_that_keep_the_kernel_and_the_parameters_tag():
    for notebook in NOTEBOOKS:
        text = twin(notebook).read_text()
        assert "# %% tags=[\"parameters\"]" in text and "format_name: percent" in text, notebook.name
        assert jupytext.read(twin(notebook)).metadata["kernelspec"]["name"] == "python3", notebook.name
    assert not list((ROOT / "scripts").glob("build_*")), "the notebook builder scripts should be gone"


def _pair(folder: Path) -> Path:
    """A copy of basics' pair in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in (".ipynb", ".py"):
        shutil.copy(ROOT / "notebooks" / f"basics{suffix}", folder / f"basics{suffix}")
    return folder / "basics.ipynb"


def test_a_cell_edited_in_the_py_only_is_named_with_the_sync_command(tmp_path):
    nb = _pair(tmp_path)
    py = twin(nb)
    py.write_text(py.read_text().replace("seed = 0", "seed = 3", 1))
    message = pair_difference(nb)
    assert message is not None and "basics.ipynb and basics.py are out of sync: cell 2 (source differs" in message
    assert "jupytext --sync notebooks/basics.ipynb" in message


def test_a_cell_edited_in_the_ipynb_only_or_a_lost_tag_is_caught(tmp_path):
    nb_path = _pair(tmp_path)
    nb = nbformat.read(nb_path, as_version=4)
    nb.cells[-1].source += "\nprint('added in Jupyter')"
    nbformat.write(nb, nb_path)
    assert f"cell {len(nb.cells)} (source differs" in pair_difference(nb_path)
    nb = nbformat.read(ROOT / "notebooks" / "basics.ipynb", as_version=4)
    nb.cells[1].metadata["tags"] = []
    nbformat.write(nb, nb_path)
    assert "cell 2 (tags differ" in pair_difference(nb_path)
    twin(nb_path).unlink()
    assert "has no paired source basics.py" in pair_difference(nb_path)


def test_the_executed_notebook_comes_from_the_py_and_publishing_keeps_the_pair_in_sync(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 2", metadata={"tags": ["parameters"]}),
                                         nbformat.v4.new_code_cell("print(x * 21)")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, path)
    assert write_twin(path) and pair_difference(path) is None
    # an edit made in the .py only reaches the executed notebook (the runner reads the source)
    twin(path).write_text(twin(path).read_text().replace("x = 2", "x = 3"))
    assert source_notebook(path).cells[0].source == "x = 3"
    assert [c.id for c in source_notebook(path).cells] == [c.id for c in nbformat.read(path, as_version=4).cells]
    run_notebooks.run(path, path, {}, cwd=tmp_path, log=run_notebooks._Elapsed(), scratch=tmp_path / "scratch")
    done = nbformat.read(path, as_version=4)
    assert done.cells[1].outputs[0]["text"] == "63\n"
    assert not write_twin(path) and pair_difference(path) is None     # a publish leaves the pair in sync


def test_publish_refuses_a_pair_out_of_sync_and_extra_parameters(tmp_path, monkeypatch, capsys):
    nb = _pair(tmp_path / "notebooks")
    twin(nb).write_text(twin(nb).read_text().replace("seed = 0", "seed = 3", 1))
    before = nb.read_text()
    monkeypatch.setattr(run_notebooks, "repo_root", lambda: tmp_path)
    with pytest.raises(SystemExit):
        run_notebooks.main(["--publish", "basics"])
    err = capsys.readouterr().err
    assert "nothing was run" in err and "jupytext --sync notebooks/basics.ipynb" in err
    assert nb.read_text() == before
    with pytest.raises(SystemExit):
        run_notebooks.main(["--publish", "-p", "seed", "1", "basics"])
    assert "change the default in notebooks/<name>.py" in capsys.readouterr().err


def test_a_trailing_newline_jupyterlab_keeps_is_not_a_difference(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("a = 1\n", metadata={"tags": ["parameters"]}),
                                         nbformat.v4.new_markdown_cell("text\n")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, path)
    write_twin(path)
    assert pair_difference(path) is None
    twin(path).write_text(twin(path).read_text().replace("a = 1", "a = 1\nb = 2"))
    assert "line 2: nothing in the .ipynb, 'b = 2' in the .py" in pair_difference(path)
