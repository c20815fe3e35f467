"""The package builds with its declared backend (setuptools, from
pyproject.toml) into a wheel that holds the code, py.typed and the metadata
of its dependencies."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel(tmp_path: Path) -> None:
    # Built from a copy, so that the build leaves nothing in the tree.
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, project)
    shutil.copytree(ROOT / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__"))
    build = "import setuptools.build_meta as b, sys; print(b.build_wheel(sys.argv[1]))"
    out = subprocess.run([sys.executable, "-c", build, str(tmp_path / "dist")], cwd=project, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    wheel = tmp_path / "dist" / out.stdout.strip().splitlines()[-1]
    assert wheel.name.startswith("signet_client-0.1.0-py3-none-any")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        metadata = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    for module in ("__init__", "sf", "keys", "sign", "verify", "requests", "httpx", "_client"):
        assert f"signet/{module}.py" in names
    assert "signet/py.typed" in names
    assert not any(n.startswith(("tests/", "tools/")) for n in names)
    assert "Name: signet-client" in metadata
    # Written "cryptography (>=3.4)" or "cryptography>=3.4", as setuptools' version likes.
    requires = {re.sub(r"[\s()'\"]", "", l.partition(":")[2]) for l in metadata.splitlines() if l.startswith("Requires-Dist:")}
    assert {"cryptography>=3.4", "requests>=2.25;extra==requests", "httpx>=0.23;extra==httpx"} <= requires
