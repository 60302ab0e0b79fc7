"""A plain install from the wheel (not editable) runs the CLI from any directory.

The configs are package data: `python -m artsy.run cifar100 --dry-run` must find them without the
source tree. The wheel is built offline from a copy of the sources and installed with --no-deps
into a folder put first on PYTHONPATH, on top of this environment's dependencies.
"""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_wheel_install_runs_the_dry_run_from_any_directory(tmp_path):
    pytest.importorskip("setuptools")
    pytest.importorskip("wheel")
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for package in ("synsim", "artsy"):
        shutil.copytree(REPO / package, src / package, ignore=ignore)
    wheels, site, elsewhere = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    subprocess.run(pip + ["wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w",
                          str(wheels), str(src)], check=True, capture_output=True, text=True)
    (whl,) = wheels.glob("synsim_artsy-*.whl")
    assert "artsy/configs/cifar100.yaml" in zipfile.ZipFile(whl).namelist()
    subprocess.run(pip + ["install", "--no-deps", "--quiet", "--target", str(site), str(whl)],
                   check=True, capture_output=True, text=True)

    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1"}
    where = subprocess.run([sys.executable, "-c", "import artsy; print(artsy.__file__)"],
                           cwd=elsewhere, env=env, check=True, capture_output=True, text=True)
    assert Path(where.stdout.strip()).is_relative_to(site)  # the wheel's copy, not the checkout
    out = subprocess.run([sys.executable, "-m", "artsy.run", "cifar100", "--dry-run"],
                         cwd=elsewhere, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "task split: 10 tasks" in out.stdout
    assert str(REPO) not in out.stdout  # nothing resolved against the source tree
