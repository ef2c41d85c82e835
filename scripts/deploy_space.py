"""Publish the app to a Hugging Face Space with huggingface_hub (no git, no LFS):

    HF_TOKEN=... python scripts/deploy_space.py --space-id OWNER/NAME [--private] [--model-id OWNER/MODEL]
    python scripts/deploy_space.py --dry-run --out DIR      # build the Space's folder only

The folder holds app.py, brain_tumor/, weights/, examples/, README.md (its front matter configures the
Space), every local file the README links to (so its images show on the Space), and a
requirements.txt without the training-only packages, taking CPU wheels of torch. A redeploy deletes
whatever the Space holds that the new folder does not.
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
# Needed only to train, evaluate or develop. scikit-learn, scipy and matplotlib stay: grad-cam imports them.
TRAINING_ONLY = ("tensorboard", "kagglehub", "scikit-image", "timm", "pyjpegls")
LINK = re.compile(r"\]\(([^)#\s]+)\)")


def space_requirements(text: str) -> str:
    keep = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith(("#", "-"))]
    keep = [line for line in keep if re.split(r"[<>=\[ ;]", line, maxsplit=1)[0].lower() not in TRAINING_ONLY]
    keep = [re.sub(r"^(torch|torchvision)==(\S+)$", r"\1==\2+cpu", line) for line in keep]
    return CPU_INDEX + "\n".join(keep) + "\n"


def linked_files(readme: str) -> list[str]:
    """Local files the README links to or shows (images, reports), relative to the repository."""
    found = []
    for target in LINK.findall(readme):
        if "://" in target or target.startswith(("mailto:", "/")):
            continue
        if (ROOT / target).is_file() and target not in found:
            found.append(target)
    return found


def with_model(readme: str, model_id: str | None) -> str:
    return readme.replace("\nlicense:", f"\nmodels:\n  - {model_id}\nlicense:", 1) if model_id else readme


def stage(target: Path, model_id: str | None) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copy2(ROOT / name, target / name)
    for name in FOLDERS:
        shutil.copytree(ROOT / name, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"), dirs_exist_ok=True)
    readme = (ROOT / "README.md").read_text()
    for relative in linked_files(readme):
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relative, target / relative)
    (target / "README.md").write_text(with_model(readme, model_id))
    (target / "requirements.txt").write_text(space_requirements((ROOT / "requirements.txt").read_text()))
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space-id", default=None, help="OWNER/NAME of the Space (not needed with --dry-run)")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--model-id", default=None, help="Hub model repository the weights were pushed to (listed on the Space)")
    parser.add_argument("--dry-run", action="store_true", help="build the folder and stop; nothing is uploaded")
    parser.add_argument("--out", default=None, help="where to build the folder (default: a temporary one)")
    args = parser.parse_args(argv)
    if args.dry_run:
        folder = stage(Path(args.out or tempfile.mkdtemp(prefix="space-")), args.model_id)
        print(f"Space folder built in {folder} (nothing uploaded)")
        return 0
    if not args.space_id:
        print("error: pass --space-id OWNER/NAME, or --dry-run to only build the folder.", file=sys.stderr)
        return 2
    from huggingface_hub import HfApi

    api = HfApi()  # reads HF_TOKEN
    with tempfile.TemporaryDirectory() as tmp:
        folder = stage(Path(args.out) if args.out else Path(tmp), args.model_id)
        try:
            api.create_repo(args.space_id, repo_type="space", space_sdk="gradio", private=args.private, exist_ok=True)
            api.upload_folder(repo_id=args.space_id, repo_type="space", folder_path=str(folder), delete_patterns=["*"],
                              commit_message="Deploy brain tumour MRI classifier")
        except Exception as error:
            print(f"error: could not publish the Space ({type(error).__name__}: {error}); check HF_TOKEN and the network.", file=sys.stderr)
            return 1
    print(f"deployed: https://huggingface.co/spaces/{args.space_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
