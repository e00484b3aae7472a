"""environment.yml and pyproject.toml must list the same dependencies with the same version floors."""
import re
from pathlib import Path

import pytest

try:                                   # Python >= 3.11
    import tomllib
except ModuleNotFoundError:            # Python 3.10 (pyproject allows it): the same parser, from PyPI
    try:
        import tomli as tomllib
    except ModuleNotFoundError:
        tomllib = None

ROOT = Path(__file__).resolve().parent.parent
# conda-forge names that differ from PyPI's
CONDA_TO_PYPI = {"pytorch": "torch"}
# the interpreter, the installer, and what pydensecrf2's build needs (Cython, a C++ compiler)
CONDA_ONLY = {"python", "pip", "cython", "cxx-compiler"}
needs_toml = pytest.mark.skipif(tomllib is None, reason="reading pyproject.toml needs tomllib (Python >= 3.11) or, "
                                                        "on Python 3.10, the tomli package: pip install -e .[test]")


def _split(req: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", req)
    return m.group(1).lower(), m.group(2).replace(" ", "")


def environment_python() -> str:
    """The Python version environment.yml pins (its ``python=X.Y`` line)."""
    m = re.search(r"^\s*-\s+python\s*=+\s*([0-9.]+)", (ROOT / "environment.yml").read_text(), re.M)
    assert m, "environment.yml pins no python=X.Y"
    return m.group(1)


def pyproject_deps() -> dict[str, str]:
    """pyproject's dependencies and test extra; one whose environment marker excludes environment.yml's Python
    (tomli, for Python < 3.11) is left out, since that environment never installs it."""
    from packaging.markers import Marker

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    reqs = data["project"]["dependencies"] + data["project"]["optional-dependencies"]["test"]
    env = {"python_version": environment_python(), "python_full_version": environment_python() + ".0"}
    kept = []
    for req in reqs:
        req, _, marker = req.partition(";")
        if not marker.strip() or Marker(marker.strip()).evaluate(env):
            kept.append(req)
    return dict(_split(r) for r in kept)


def environment_deps() -> dict[str, str]:
    deps, in_pip = {}, False
    for line in (ROOT / "environment.yml").read_text().splitlines():
        item = re.match(r"^(\s*)-\s+(.*?)\s*(#.*)?$", line)
        if not item:
            in_pip = in_pip and line.startswith("      ")
            continue
        indent, text = len(item.group(1)), item.group(2)
        if text == "pip:":
            in_pip = True
            continue
        if text.startswith("-e") or (indent <= 2 and text in ("conda-forge", "defaults")):
            continue
        name, spec = _split(text.replace("=", "==", 1) if re.match(r"^[\w\-]+=[^=<>]", text) else text)
        if name in CONDA_ONLY:
            continue
        deps[CONDA_TO_PYPI.get(name, name)] = spec
    return deps


@needs_toml
def test_environment_and_pyproject_agree():
    py, env = pyproject_deps(), environment_deps()
    assert set(py) == set(env), f"only in pyproject: {set(py) - set(env)}, only in environment.yml: {set(env) - set(py)}"
    for name in py:
        assert py[name] == env[name], f"{name}: pyproject says {py[name]!r}, environment.yml says {env[name]!r}"


def environment_names() -> list[str]:
    """Every package name environment.yml lists (conda-only ones included)."""
    return [m.group(1) for m in re.finditer(r"^\s*-\s+([A-Za-z0-9_.\-]+)", (ROOT / "environment.yml").read_text(), re.M)]


@needs_toml
def test_pyproject_is_readable_on_every_python_it_allows_and_pydensecrf2_can_be_built():
    """A Python < 3.11 that pyproject allows has no tomllib: the test extra brings tomli there (and only there).
    pydensecrf2 compiles C++ when installed: environment.yml brings conda-forge's compiler."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    floor = re.match(r">=\s*3\.(\d+)", data["project"]["requires-python"])
    test = [r.replace(" ", "") for r in data["project"]["optional-dependencies"]["test"]]
    if floor and int(floor.group(1)) < 11:
        assert any(r.startswith("tomli>=") and r.endswith(";python_version<'3.11'") for r in test), test
    assert "tomli" not in pyproject_deps() or tuple(map(int, environment_python().split("."))) < (3, 11)
    assert "cxx-compiler" in environment_names() and "cython" in environment_names()


def test_readme_test_command_is_what_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    commands = [line.strip() for line in ci.splitlines() if "pytest" in line and not line.strip().startswith("#")]
    assert commands, ".ci/run runs no pytest command"
    for command in commands:
        assert command in readme, f"README.md does not show CI's test command: {command}"
