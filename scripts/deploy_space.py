"""Publish the app to a Hugging Face Space with huggingface_hub (no git, no LFS):

    HF_TOKEN=... python scripts/deploy_space.py --space-id OWNER/NAME [--private] [--model-id OWNER/MODEL]

Uploads app.py, brain_tumor/, weights/, examples/, README.md (its front matter configures the
Space) and a requirements.txt that takes CPU wheels of torch, as Spaces' free hardware has no GPU.
"""
from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILES = ["app.py", "LICENSE", "README.md"]
FOLDERS = ["brain_tumor", "weights", "examples"]
CPU_INDEX = "--extra-index-url https://download.pytorch.org/whl/cpu\n"
# Training-only packages the Space does not need.
SKIP = ("tensorboard", "matplotlib", "scikit-learn", "tqdm")


def space_requirements(text: str) -> str:
    keep = [line for line in text.splitlines() if line.strip() and not line.startswith("#") and not line.startswith(SKIP)]
    keep = [re.sub(r"^(torch|torchvision)==(\S+)$", r"\1==\2+cpu", line) for line in keep]
    return CPU_INDEX + "\n".join(keep) + "\n"


def stage(target: Path, model_id: str | None) -> Path:
    for name in FILES:
        shutil.copy2(ROOT / name, target / name)
    for name in FOLDERS:
        shutil.copytree(ROOT / name, target / name, ignore=shutil.ignore_patterns("__pycache__"))
    (target / "requirements.txt").write_text(space_requirements((ROOT / "requirements.txt").read_text()))
    if model_id:  # link the Space to the model repository on the Hub
        readme = (target / "README.md").read_text()
        (target / "README.md").write_text(readme.replace("\nlicense:", f"\nmodels:\n  - {model_id}\nlicense:", 1))
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space-id", required=True, help="OWNER/NAME of the Space")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--model-id", default=None, help="Hub model repository the weights were pushed to (listed on the Space)")
    args = parser.parse_args(argv)
    from huggingface_hub import HfApi

    api = HfApi()  # reads HF_TOKEN
    with tempfile.TemporaryDirectory() as tmp:
        folder = stage(Path(tmp), args.model_id)
        try:
            api.create_repo(args.space_id, repo_type="space", space_sdk="gradio", private=args.private, exist_ok=True)
            api.upload_folder(repo_id=args.space_id, repo_type="space", folder_path=str(folder), commit_message="Deploy brain tumour MRI classifier")
        except Exception as error:
            print(f"error: could not publish the Space ({type(error).__name__}: {error}); check HF_TOKEN and the network.", file=sys.stderr)
            return 1
    print(f"deployed: https://huggingface.co/spaces/{args.space_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
