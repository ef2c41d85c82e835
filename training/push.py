"""Upload a weights folder to the Hugging Face Hub:
`python -m training.push --weights DIR --repo-id OWNER/NAME [--private] [--revision BRANCH]`.

Needs HF_TOKEN (or a cached `hf auth login`). Refuses folders that do not load or whose shards
do not match their recorded sha256, so nothing unverifiable is published.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from brain_tumor.errors import UserError, WeightsError
from brain_tumor.weights import CARD_NAME, CONFIG_NAME, verify_weights


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True, help="a weights folder written by training.fit (…/weights)")
    p.add_argument("--repo-id", required=True, help="OWNER/NAME of the model repository")
    p.add_argument("--private", action="store_true", help="create the repository as private")
    p.add_argument("--revision", default=None, help="branch to upload to (default: main)")
    p.add_argument("--message", default="Upload brain_tumor weights", help="commit message")
    return p


def push(args: argparse.Namespace) -> str:
    from huggingface_hub import HfApi

    folder = Path(args.weights)
    verify_weights(folder)  # the config and every shard's sha256
    if not (folder / CARD_NAME).is_file():
        raise WeightsError(f"{folder} has no {CARD_NAME} model card; re-export it with training.fit.")
    api = HfApi()  # reads HF_TOKEN
    api.create_repo(args.repo_id, repo_type="model", private=args.private, exist_ok=True)
    commit = api.upload_folder(
        repo_id=args.repo_id, folder_path=str(folder), repo_type="model", revision=args.revision,
        commit_message=args.message, allow_patterns=[CONFIG_NAME, CARD_NAME, "*.safetensors", "*.safetensors.index.json"],
    )
    url = getattr(commit, "commit_url", None) or f"https://huggingface.co/{args.repo_id}"
    print(f"uploaded {folder} to {args.repo_id}: {url}")
    return url


def main(argv: list[str] | None = None) -> int:
    try:
        push(get_args_parser().parse_args(argv))
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # network, auth: huggingface_hub's own message is the useful one
        print(f"error: upload to the Hub failed ({type(error).__name__}: {error}); check HF_TOKEN and the network.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
