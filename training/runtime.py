"""The machinery of a training run: processes and devices, seeding, the state a checkpoint holds,
and the run's log (text, CSV and TensorBoard)."""
from __future__ import annotations

import csv
import dataclasses
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from brain_tumor.errors import UsageError

CHECKPOINT = "checkpoint.pt"


# ---------------------------------------------------------------- processes and devices

def setup_distributed() -> tuple[int, int, int]:
    """(rank, world_size, local_rank); initialises the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, 0
    backend = "nccl" if torch.cuda.is_available() and os.environ.get("BRAIN_TUMOR_DDP_BACKEND", "") != "gloo" else "gloo"
    dist.init_process_group(backend)
    return dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0"))


def barrier(world: int) -> None:
    if world > 1:
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor, world: int) -> torch.Tensor:
    if world > 1:
        dist.all_reduce(tensor)
    return tensor


def all_reduce_min(value: int, device: torch.device, world: int) -> int:
    tensor = torch.tensor(value, device=device)
    if world > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
    return int(tensor)


def teardown(world: int) -> None:
    barrier(world)
    if world > 1:
        dist.destroy_process_group()


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """'auto', 'cpu' or 'cuda' to a device; on CUDA, also the fast-math settings training uses."""
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for, but PyTorch sees no CUDA GPU; use --device cpu or auto.")
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    device = torch.device("cuda", local_rank)
    torch.cuda.set_device(device)
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    return device


def memory_format(device: torch.device, use_amp: bool) -> torch.memory_format:
    """The layout a run keeps its model, teacher and inputs in: channels-last where it is faster, on CUDA and on a CPU
    under bf16 autocast (a ResNet-50 training step 2.7 times as fast with both on an AVX-512 BF16 CPU); float32 on the
    CPU keeps the default layout, and its earlier runs' figures."""
    return torch.channels_last if device.type == "cuda" or use_amp else torch.contiguous_format


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    model = getattr(model, "module", model)  # DDP
    return getattr(model, "_orig_mod", model)  # torch.compile


# ---------------------------------------------------------------- checkpoints

@dataclasses.dataclass
class TrainState:
    """Everything about a run's progress that a checkpoint restores, besides the model and optimiser."""
    epoch: int = -1  # the last finished epoch (0-based)
    best_value: float | None = None
    best_epoch: int | None = None
    best_state: dict[str, torch.Tensor] | None = None
    history: list[dict] = dataclasses.field(default_factory=list)
    stale: int = 0  # epochs since the best
    wall_time_s: float = 0.0

    def improve(self, value: float, epoch: int, metric: str, model: torch.nn.Module) -> bool:
        """Record `value` for this epoch; keep the weights when it is the best so far."""
        better = self.best_value is None or (value < self.best_value if metric == "loss" else value > self.best_value)
        if better:
            self.best_value, self.best_epoch, self.stale = value, epoch + 1, 0
            self.best_state = {k: v.detach().cpu().clone() for k, v in unwrap(model).state_dict().items()}
        else:
            self.stale += 1
        return better

    def save(self, path: Path, args: dict, model, optimizer, scheduler) -> None:
        tmp = path.with_suffix(".tmp")
        torch.save({"args": args, "model": unwrap(model).state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), **dataclasses.asdict(self)}, tmp)
        tmp.replace(path)

    @classmethod
    def restore(cls, checkpoint: dict, model, optimizer, scheduler) -> "TrainState":
        unwrap(model).load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        return cls(**{f.name: checkpoint[f.name] for f in dataclasses.fields(cls)})


def load_checkpoint(path: Path) -> dict:
    # weights_only: a checkpoint is tensors, numbers and strings; nothing is unpickled as code.
    return torch.load(path, map_location="cpu", weights_only=True)


# ---------------------------------------------------------------- the run's log

class RunLog:
    """Lines to the terminal and train_log.txt; a row per epoch to metrics.csv and TensorBoard. Rank 0 only."""

    def __init__(self, out: Path, rank: int, fields: list[str], append: bool = False):
        self.active = rank == 0
        self.text = out / "train_log.txt"
        self.csv = out / "metrics.csv"
        self.fields = fields
        self.writer: Any = None
        if not self.active:
            return
        out.mkdir(parents=True, exist_ok=True)
        if append and self.csv.exists():  # a resumed run keeps its file's columns
            with open(self.csv, newline="") as handle:
                self.fields = next(csv.reader(handle), fields)
        else:
            with open(self.csv, "w", newline="") as handle:
                csv.writer(handle).writerow(fields)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out / "tensorboard"))
        except ImportError:
            self.line("tensorboard is not installed; writing metrics.csv only")

    def line(self, message: str) -> None:
        if self.active:
            tqdm.write(message)
            with open(self.text, "a") as handle:
                handle.write(message + "\n")

    def epoch(self, row: dict) -> None:
        if not self.active:
            return
        with open(self.csv, "a", newline="") as handle:
            csv.writer(handle).writerow([row.get(f, "") for f in self.fields])
        if self.writer is not None:
            for key in self.fields[1:]:
                if isinstance(row.get(key), (int, float)):
                    self.writer.add_scalar(key, row[key], row["epoch"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
