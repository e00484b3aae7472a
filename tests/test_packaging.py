"""environment.yml and pyproject.toml must list the same dependencies with the same version floors."""
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# conda-forge names that differ from PyPI's
CONDA_TO_PYPI = {"pytorch": "torch"}
CONDA_ONLY = {"python", "pip", "cython"}   # the interpreter, the installer, pydensecrf2's build tool


def _split(req: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", req)
    return m.group(1).lower(), m.group(2).replace(" ", "")


def pyproject_deps() -> dict[str, str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    reqs = data["project"]["dependencies"] + data["project"]["optional-dependencies"]["test"]
    return dict(_split(r) for r in reqs)


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


def test_environment_and_pyproject_agree():
    py, env = pyproject_deps(), environment_deps()
    assert set(py) == set(env), f"only in pyproject: {set(py) - set(env)}, only in environment.yml: {set(env) - set(py)}"
    for name in py:
        assert py[name] == env[name], f"{name}: pyproject says {py[name]!r}, environment.yml says {env[name]!r}"


def test_readme_test_command_is_what_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    commands = [line.strip() for line in ci.splitlines() if "pytest" in line and not line.strip().startswith("#")]
    assert commands, ".ci/run runs no pytest command"
    for command in commands:
        assert command in readme, f"README.md does not show CI's test command: {command}"
