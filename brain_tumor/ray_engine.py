"""Scoring an archive on Ray Data: `brain-tumor-predict --engine ray SOURCE... --out DIR`.

Ray tasks read and decode the files in parallel (images, DICOM files, .zip archives, NIfTI volumes and DICOM series,
all through brain_tumor.uploads, so a file means what it means everywhere else), a pool of actors each holding one
Classifier scores them in batches, and the rows are written as Parquet files under DIR: one row per slice, with its
file, the source file on disk, the probabilities, the label, the out-of-distribution flag, the weights version and
an error column for what could not be read. A rerun over the same DIR scores only the sources not yet complete, so an
interrupted run loses nothing it finished and scores nothing twice.

Ray is an optional extra (`pip install "brain-tumor-mri[ray]"`), imported only here.
"""
from __future__ import annotations

import dataclasses
import os
import re
import uuid
from pathlib import Path

import numpy as np

from brain_tumor.classes import CLASSES
from brain_tumor.config import ModelConfig
from brain_tumor.errors import UsageError, UserError

COLUMNS = ["file", "source", "slice", "label", *CLASSES, "out_of_distribution", "warning", "weights_version", "heatmap", "error",
           "rows_in_source"]
DONE_PREFIX = "rows-"  # this engine's Parquet files; anything else under DIR is left alone


def schema():
    """The table's types, fixed, so every Parquet file has the same schema whatever its rows hold."""
    import pyarrow as pa

    types = {"slice": pa.int32(), "out_of_distribution": pa.bool_(), "rows_in_source": pa.int32(), **{c: pa.float64() for c in CLASSES}}
    return pa.schema([(c, types.get(c, pa.string())) for c in COLUMNS])


@dataclasses.dataclass
class RaySettings:
    out: Path
    weights: Path
    address: str | None = None  # None: a local Ray started for the run; "auto" or host:port: a running cluster
    actors: int | None = None  # None: one per CPU Ray reports, less one for reading
    batch_size: int = 32
    heatmaps: bool = False
    plane: str = "axial"
    cpus: int | None = None  # a local Ray's CPUs (None: all of this machine's)


def import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise UsageError('--engine ray needs Ray Data; install it with: pip install "brain-tumor-mri[ray]" (or pip install "ray[data]").') from None
    return ray


# ---- resuming

def finished_sources(out: Path) -> tuple[set[str], int]:
    """The sources whose every row is already under `out`, and how many rows they hold. Rows of sources left
    incomplete by an interrupted run, and files it left unreadable, are removed (the kept rows rewritten into one
    file), so those sources are scored again and each ends up exactly once."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted(out.glob(f"{DONE_PREFIX}*.parquet"))
    tables, broken = [], []
    for path in files:
        try:
            tables.append(pq.read_table(path))
        except Exception:  # a file cut off mid-write
            broken.append(path)
    if not tables:
        for path in broken:
            path.unlink()
        return set(), 0
    table = pa.concat_tables(tables, promote_options="default")
    sources = table.column("source").to_pylist()
    expected = table.column("rows_in_source").to_pylist()
    counts: dict[str, int] = {}
    for source in sources:
        counts[source] = counts.get(source, 0) + 1
    complete = {s for s, n in zip(sources, expected) if counts[s] == n}
    if broken or len(complete) < len(counts):
        keep = np.array([s in complete for s in sources])
        merged = out / f"{DONE_PREFIX}resumed-{uuid.uuid4().hex[:8]}.parquet"
        pq.write_table(table.filter(pa.array(keep)), merged.with_suffix(".tmp"))
        merged.with_suffix(".tmp").replace(merged)
        for path in files:
            path.unlink(missing_ok=True)
    return complete, sum(counts[s] for s in complete)


# ---- the two stages: decoding (Ray tasks) and scoring (Ray actors)

def decode(batch: dict, config: ModelConfig, plane: str) -> dict:
    """Ray task: each source file (a path) expanded into rows of slices resized for the model (uint8; the actors
    normalise them), or rows with their error."""
    from brain_tumor.images import load_image
    from brain_tumor.preprocess import to_uint8_tensor
    from brain_tumor.scan import NOT_SCORED
    from brain_tumor.uploads import Item, gather

    side = config.image_size

    def resized(picture) -> np.ndarray:  # what the model reads, before normalising: uint8 3×S×S
        return to_uint8_tensor(picture, side, config.clahe).numpy()

    rows = []
    for source in batch["source"]:
        source = str(source)
        found = []
        try:
            for part in gather([(source, Path(source))], scans=True, plane=plane, limit=None):
                if isinstance(part, Item) and not part.error:
                    try:
                        found.append((part.name, -1, resized(load_image(part.source)), None))
                    except UserError as error:
                        found.append((part.name, -1, None, str(error)))
                elif part.error:
                    found.append((part.name, -1, None, part.error))
                else:
                    for i, outside in enumerate(part.volume.outside_head):
                        found.append((part.name, i, None, NOT_SCORED) if outside else (part.name, i, resized(part.volume.picture(i)), None))
        except UserError as error:
            found.append((source, -1, None, str(error)))
        except Exception as error:  # a file that breaks a reader in a way we did not foresee must not stop the archive
            found.append((source, -1, None, f"{Path(source).name} could not be read ({type(error).__name__}: {error})."))
        for name, index, pixels, error in found:
            rows.append({"file": name, "source": source, "slice": index, "error": error or "", "rows_in_source": len(found),
                         "pixels": pixels if pixels is not None else np.zeros((3, side, side), dtype=np.uint8)})
    columns = {key: [r[key] for r in rows] for key in ("file", "source", "slice", "error", "rows_in_source")}
    columns["pixels"] = np.stack([r["pixels"] for r in rows]) if rows else np.zeros((0, 3, side, side), dtype=np.uint8)
    return columns


class Scorer:
    """Ray actor: one Classifier loaded once, scoring batches of decoded slices (and writing heatmaps when asked)."""

    def __init__(self, weights: str, heatmaps: str | None):
        import torch

        from brain_tumor.classifier import Classifier

        torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
        self.classifier = Classifier.from_pretrained(weights)
        self.heatmaps = Path(heatmaps) if heatmaps else None

    def __call__(self, batch: dict):
        import pyarrow as pa
        import torch

        from brain_tumor.preprocess import normalize

        count = len(batch["file"])
        errors = [str(e) if e else None for e in batch["error"]]  # "" between the stages (Ray keeps a column one type)
        good = [i for i in range(count) if errors[i] is None]
        config = self.classifier.config
        inputs = normalize(torch.from_numpy(np.asarray(batch["pixels"])[good]), config.mean, config.std)
        predictions = dict(zip(good, self.classifier.predict_preprocessed(inputs) if good else []))
        out = {key: [v.item() if hasattr(v, "item") else v for v in batch[key]] for key in ("file", "source", "slice", "rows_in_source")}
        out["error"] = errors
        out.update({c: [] for c in CLASSES}, label=[], out_of_distribution=[], warning=[], heatmap=[],
                   weights_version=[self.classifier.version] * count)
        for i in range(count):
            p = predictions.get(i)
            for c in CLASSES:
                out[c].append(p.probabilities[c] if p else None)
            out["label"].append(p.label if p else None)
            out["out_of_distribution"].append(p.out_of_distribution if p else None)
            out["warning"].append(p.warning if p else None)
            out["heatmap"].append(self._heatmap(batch, i) if p and self.heatmaps else None)
        return pa.table({c: out[c] for c in COLUMNS}, schema=schema())

    def _heatmap(self, batch: dict, i: int) -> str:
        """The slice's heatmap over the model's input (what was scored), saved as a PNG beside the table."""
        from PIL import Image

        picture = Image.fromarray(np.asarray(batch["pixels"][i]).transpose(1, 2, 0))
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", str(batch["file"][i]).lstrip("/"))[-150:]
        suffix = f"_slice{batch['slice'][i]}" if batch["slice"][i] >= 0 else ""
        path = self.heatmaps / f"{name}{suffix}.png"
        self.classifier.explain(picture).overlay.save(path)
        return str(path)


# ---- the run

def run(settings: RaySettings, sources: list[Path]) -> dict:
    """Score every source not yet complete under settings.out; {"sources", "skipped", "rows", "new_rows"}."""
    ray = import_ray()
    from brain_tumor.weights import CONFIG_NAME

    settings.out.mkdir(parents=True, exist_ok=True)
    done, kept_rows = finished_sources(settings.out)
    todo = [str(p) for p in sources if str(p) not in done]
    summary = {"sources": len(sources), "skipped": len(sources) - len(todo), "rows_kept": kept_rows, "new_rows": 0}
    if not todo:
        return summary
    config = ModelConfig.load(Path(settings.weights) / CONFIG_NAME)
    heatmaps = None
    if settings.heatmaps:
        heatmaps = settings.out / "heatmaps"
        heatmaps.mkdir(exist_ok=True)
    if not ray.is_initialized():
        ray.init(address=settings.address, num_cpus=settings.cpus if settings.address is None else None,
                 include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}} if settings.address is None else None)
    cpus = int(ray.cluster_resources().get("CPU", 1))
    actors = settings.actors or max(1, cpus - 1)
    dataset = ray.data.from_items([{"source": s} for s in todo], override_num_blocks=min(len(todo), max(1, 4 * cpus)))
    dataset = dataset.map_batches(decode, batch_size=8, fn_kwargs={"config": config, "plane": settings.plane})
    dataset = dataset.map_batches(Scorer, batch_size=settings.batch_size, concurrency=actors, num_cpus=1,
                                  fn_constructor_kwargs={"weights": str(settings.weights), "heatmaps": str(heatmaps) if heatmaps else None})
    # Each run's files are rows-<run>_<write>_<task>.parquet, so a rerun never overwrites what an earlier one wrote.
    names = ray.data.datasource.FilenameProvider(dataset_uuid=f"{DONE_PREFIX}{uuid.uuid4().hex[:8]}", file_format="parquet")
    dataset.write_parquet(str(settings.out), filename_provider=names)
    summary["new_rows"] = _count_rows(settings.out) - kept_rows
    return summary


def _count_rows(out: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(p).metadata.num_rows for p in out.glob(f"{DONE_PREFIX}*.parquet"))


def read_rows(out: Path):
    """Every row under `out` as a pandas DataFrame (for CSV, and for checking)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = [pq.read_table(p) for p in sorted(out.glob(f"{DONE_PREFIX}*.parquet"))]
    if not tables:
        return pa.table({c: [] for c in COLUMNS}).to_pandas()
    return pa.concat_tables(tables, promote_options="default").to_pandas()
