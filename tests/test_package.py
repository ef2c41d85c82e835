"""The package installs from a wheel and works outside the repository."""
from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys

import pytest

from tests.helpers import EXAMPLES, ROOT, SHIPPED_BASELINE


@pytest.mark.slow  # builds a wheel and a virtual environment
def test_the_wheel_installs_and_its_command_classifies_from_elsewhere(tmp_path):
    source = tmp_path / "source"  # a copy, so that building leaves no egg-info in the checkout
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", "weights", "tests", "docs", "test-artifacts", "*.egg-info"))
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels)],
                   check=True, cwd=tmp_path, env=clean)
    wheel = next(wheels.glob("brain_tumor_mri-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # The new environment sees this one's dependencies (torch and the rest) but not the repository.
    packages = next(venv.glob("lib/python*/site-packages"))
    (packages / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([venv / "bin" / "python", "-m", "pip", "install", "--no-deps", "-q", str(wheel)], check=True, cwd=tmp_path, env=clean)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run([venv / "bin" / "brain-tumor-predict", "--weights", str(SHIPPED_BASELINE), str(EXAMPLES[2])],
                            capture_output=True, text=True, cwd=elsewhere, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-2000:]
    from brain_tumor import DISPLAY_NAMES, Classifier

    expected = Classifier.from_pretrained(SHIPPED_BASELINE, backend="torch").predict(EXAMPLES[2]).label
    assert result.stdout.startswith(f"{EXAMPLES[2]}: {DISPLAY_NAMES[expected]} (")
    where = subprocess.run([venv / "bin" / "python", "-c", "import brain_tumor; print(brain_tumor.__file__)"],
                           capture_output=True, text=True, cwd=elsewhere, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}).stdout
    assert str(venv) in where and str(ROOT) not in where
