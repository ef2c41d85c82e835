"""The Hugging Face Space: its folder is built without uploading, and app.py runs from that folder alone."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from benchmarks.serve import serve
from tests.helpers import EXAMPLES, ROOT, run_module

sys.path.insert(0, str(ROOT / "scripts"))
import deploy_space  # noqa: E402

sys.path.pop(0)
BLOCKED = ("tensorboard", "kagglehub", "training", "tests", "benchmarks")


@pytest.fixture(scope="module")
def space(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("space") / "folder"
    result = run_module("scripts.deploy_space", "--dry-run", "--out", out, "--model-id", "someone/brain-tumor-resnet50")
    assert "nothing uploaded" in result.stdout
    return out


def test_the_folder_holds_the_app_and_nothing_for_training(space):
    files = {str(p.relative_to(space)) for p in space.rglob("*") if p.is_file()}
    assert {"app.py", "README.md", "requirements.txt", "weights/resnet50/config.json", "brain_tumor/classifier.py", "examples/examples.csv"} <= files
    assert not any(f.startswith(("tests/", "benchmarks/", ".venv")) or (f.startswith("training/") and f.endswith(".py")) for f in files)
    requirements = (space / "requirements.txt").read_text()
    assert "download.pytorch.org/whl/cpu" in requirements and re.search(r"^torch==[\d.]+\+cpu$", requirements, re.M)
    assert "tensorboard" not in requirements and "kagglehub" not in requirements and "gradio" in requirements


def test_the_readme_configures_the_space_and_its_images_resolve(space):
    readme = (space / "README.md").read_text()
    front = readme.split("---")[1]
    for key in ("sdk: gradio", "app_file: app.py", "python_version:", "suggested_hardware: cpu-basic", "tags:", "- someone/brain-tumor-resnet50"):
        assert key in front, key
    links = [t for t in re.findall(r"\]\(([^)#\s]+)\)", readme) if "://" not in t]
    assert links and all((space / link).is_file() for link in links), [link for link in links if not (space / link).is_file()]


@pytest.mark.slow
def test_app_py_runs_from_the_space_folder_alone(space, tmp_path):
    from gradio_client import Client, handle_file

    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import importlib.abc, sys\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {BLOCKED!r}:\n"
        "            raise ImportError(f'{name} is not part of the Space')\n"
        "sys.meta_path.insert(0, Block())\n")
    with serve(["app.py"], cwd=space, env={"PYTHONPATH": str(blocker)}, timeout=900) as (url, _):
        answer, _ = Client(url, verbose=False).predict(handle_file(str(EXAMPLES[2])), api_name="/classify")
    assert answer["label"] == "meningioma"


def test_a_redeploy_replaces_what_the_space_held(monkeypatch):
    import huggingface_hub

    calls = {}

    class FakeApi:
        def create_repo(self, repo_id, **kwargs):
            calls["create"] = (repo_id, kwargs)

        def upload_folder(self, folder_path, **kwargs):
            calls["files"] = {str(p.relative_to(folder_path)) for p in Path(folder_path).rglob("*") if p.is_file()}
            calls["upload"] = kwargs

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    assert deploy_space.main(["--space-id", "someone/brain-tumor"]) == 0
    assert calls["create"][1]["space_sdk"] == "gradio" and calls["upload"]["delete_patterns"] == ["*"]
    assert "app.py" in calls["files"] and "weights/resnet50/config.json" in calls["files"]
