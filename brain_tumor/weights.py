"""Weights folders: config.json + safetensors shards (< 15 MB each) + a README.md model card.

A folder may live on disk or on the Hugging Face Hub. Nothing is ever unpickled.
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import torch

from brain_tumor.config import ModelConfig
from brain_tumor.errors import WeightsError
from brain_tumor.models import create_model

CONFIG_NAME = "config.json"
CARD_NAME = "README.md"
MAX_SHARD_SIZE = "15MB"
# The repository's own weights/ folder, searched when nothing else is named.
PROJECT_WEIGHTS = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_CANDIDATES = ("resnet50", "baseline")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_version(config: ModelConfig) -> str:
    """A short id of the exact weights: the first 12 hex digits of the sha256 over every shard's sha256."""
    if not config.weights_sha256:
        return "unsaved"
    joined = "\n".join(f"{name} {digest}" for name, digest in sorted(config.weights_sha256.items()))
    return hashlib.sha256(joined.encode()).hexdigest()[:12]


def save_weights(state_dict: dict[str, torch.Tensor], config: ModelConfig, directory: Path, card: str | None = None) -> Path:
    """Write the weights folder. Floats are stored as config.weights_dtype (float32 or float16)."""
    from huggingface_hub import save_torch_state_dict

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*.safetensors*"):
        old.unlink()
    dtype = getattr(torch, config.weights_dtype)
    tensors = {
        name: (t.detach().to("cpu", dtype) if t.is_floating_point() else t.detach().cpu()).contiguous()
        for name, t in state_dict.items()
    }
    save_torch_state_dict(tensors, directory, max_shard_size=MAX_SHARD_SIZE)
    config.weights_sha256 = {p.name: _sha256(p) for p in sorted(directory.glob("*.safetensors"))}
    config.save(directory / CONFIG_NAME)
    if card is None:
        from brain_tumor.card import model_card

        card = model_card(config)
    (directory / CARD_NAME).write_text(card)
    return directory


def verify_weights(directory: Path) -> ModelConfig:
    """The config of a local weights folder, after checking every shard's sha256 against it."""
    directory = Path(directory)
    config_path = directory / CONFIG_NAME
    if not config_path.is_file():
        raise WeightsError(f"{directory} has no {CONFIG_NAME}; it is not a weights folder saved by brain_tumor.")
    config = ModelConfig.load(config_path)
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise WeightsError(f"{directory} has a config but no .safetensors weights files.")
    missing = sorted(set(config.weights_sha256) - {p.name for p in files})
    if missing:
        raise WeightsError(f"{directory} is missing the weights file {missing[0]} named in its config.")
    for name, expected in sorted(config.weights_sha256.items()):
        if _sha256(directory / name) != expected:
            raise WeightsError(
                f"{directory / name} does not match the sha256 recorded in config.json; it was altered or "
                "corrupted, so download or copy the weights again."
            )
    return config


def load_model(directory: Path) -> tuple[torch.nn.Module, ModelConfig]:
    """The model in a verified weights folder, its shards read by huggingface_hub's sharded loader."""
    from huggingface_hub import load_torch_model

    config = verify_weights(directory)
    model = create_model(config.architecture, len(config.classes), init="scratch", head=config.head, image_size=config.image_size)
    load_torch_model(model, directory, strict=True)  # safetensors only: nothing is unpickled
    return model, config


def _download(repo_id: str, revision: str | None, token: str | bool | None, cache_dir: str | os.PathLike | None,
              local_files_only: bool) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        # Without a token, HF_TOKEN is used; HF_HUB_OFFLINE is read by huggingface_hub itself.
        path = snapshot_download(
            repo_id, revision=revision, token=token, cache_dir=cache_dir, local_files_only=local_files_only,
            allow_patterns=[CONFIG_NAME, CARD_NAME, "*.safetensors", "*.safetensors.index.json"],
        )
    except GatedRepoError:
        raise WeightsError(f"The Hub repository {repo_id} is gated; accept its terms and set HF_TOKEN.") from None
    except RepositoryNotFoundError:
        raise WeightsError(
            f"The Hub repository {repo_id} does not exist or is private; check the id, or set HF_TOKEN for a private one."
        ) from None
    except RevisionNotFoundError:
        raise WeightsError(f"The Hub repository {repo_id} has no revision {revision!r}.") from None
    except LocalEntryNotFoundError:
        raise WeightsError(
            f"Could not download {repo_id} from the Hugging Face Hub (offline or unreachable, and not in the "
            "local cache); connect to the internet, unset HF_HUB_OFFLINE, or pass a local weights folder."
        ) from None
    except OSError as error:
        raise WeightsError(f"Could not download {repo_id} from the Hugging Face Hub ({error}).") from None
    return Path(path)


def resolve_weights(source: str | os.PathLike | None = None, revision: str | None = None, token: str | bool | None = None,
                    cache_dir: str | os.PathLike | None = None, local_files_only: bool = False) -> Path:
    """A local weights folder for `source`: a folder, a Hub id (downloaded, or only looked up in the
    cache with local_files_only), or the defaults.

    Defaults, in order: $BRAIN_TUMOR_WEIGHTS, weights/resnet50, weights/baseline.
    """
    if source is None:
        source = os.environ.get("BRAIN_TUMOR_WEIGHTS") or None
    if source is None:
        for name in DEFAULT_CANDIDATES:
            if (PROJECT_WEIGHTS / name / CONFIG_NAME).is_file():
                return PROJECT_WEIGHTS / name
        raise WeightsError(
            "No model weights found: pass --weights DIR or a Hugging Face Hub id, set BRAIN_TUMOR_WEIGHTS, "
            "or train a model with 'python -m training.fit'."
        )
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    text = str(source)
    if _HUB_ID.match(text) and not path.exists() and not text.startswith((".", "/", "~")):
        return _download(text, revision, token, cache_dir, local_files_only)
    raise WeightsError(f"Weights folder {text} does not exist; pass a folder saved by brain_tumor or a Hub id like owner/name.")


def available_weights() -> list[Path]:
    """Every weights folder under the project's weights/ directory, default first."""
    if not PROJECT_WEIGHTS.is_dir():
        return []
    found = [p for p in sorted(PROJECT_WEIGHTS.iterdir()) if (p / CONFIG_NAME).is_file()]
    order = {name: i for i, name in enumerate(DEFAULT_CANDIDATES)}
    return sorted(found, key=lambda p: (order.get(p.name, len(order)), p.name))
