"""What the notebook builders share: collect markdown and code cells, write the unexecuted notebook."""
from pathlib import Path

import nbformat as nbf

ROOT = Path(__file__).resolve().parents[1]


class Cells(list):
    """A notebook's cells in order: ``md(text)``, ``code(text, tags=None)``, then ``write(name)``."""

    def md(self, text: str) -> None:
        self.append(nbf.v4.new_markdown_cell(text.strip("\n")))

    def code(self, text: str, tags=None) -> None:
        cell = nbf.v4.new_code_cell(text.strip("\n"))
        if tags:
            cell.metadata["tags"] = tags
        self.append(cell)

    def write(self, name: str) -> Path:
        """notebooks/<name>.ipynb with the python3 kernel (papermill and nbval need its name)."""
        nb = nbf.v4.new_notebook()
        nb.cells = list(self)
        nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                       "language_info": {"name": "python", "version": "3.11.7"}}
        out = ROOT / "notebooks" / f"{name}.ipynb"
        nbf.write(nb, out)
        print(f"wrote {out}")
        return out
