"""Many files at once: expanding .zip archives, and one row per file for tables, CSV and JSON.

Every file gets a row: a result, or the one-sentence reason it could not be read. The same row
shape serves the CLI (--csv, --json), the page's batch table and the classify_batch API.
"""
from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path
from typing import Iterator

from brain_tumor.classes import CLASSES
from brain_tumor.classifier import Prediction
from brain_tumor.errors import UserError
from brain_tumor.images import IMAGE_SUFFIXES

CSV_FIELDS = ["file", "label", *CLASSES, "out_of_distribution", "warning", "error"]
MAX_ARCHIVE_MEMBERS = 1000
MAX_ARCHIVE_BYTES = 1 << 30  # uncompressed; a zip bomb is refused from its directory, before inflating


def result_row(name: str, prediction: Prediction | None = None, error: str | None = None) -> dict:
    """One row: file, label, a probability per class, out_of_distribution, warning, error."""
    row = {"file": name, "label": None, **{c: None for c in CLASSES}, "out_of_distribution": None, "warning": None, "error": error}
    if prediction is not None:
        row.update(label=prediction.label, out_of_distribution=prediction.out_of_distribution, warning=prediction.warning,
                   **prediction.probabilities)
    return row


def nested_row(row: dict) -> dict:
    """A row with the probabilities gathered under one key, as JSON output has them."""
    probabilities = None if row["label"] is None else {c: row[c] for c in CLASSES}
    return {"file": row["file"], "label": row["label"], "probabilities": probabilities,
            "out_of_distribution": row["out_of_distribution"], "warning": row["warning"], "error": row["error"]}


def csv_text(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _wanted(name: str) -> bool:
    parts = Path(name).parts
    return not name.endswith("/") and not any(p.startswith((".", "__MACOSX")) for p in parts) and (
        Path(name).suffix.lower() in IMAGE_SUFFIXES or not Path(name).suffix)


def archive_members(data: bytes, name: str) -> Iterator[tuple[str, io.BytesIO]]:
    """(archive/member, file object) for each image or extension-less (DICOM) file in a zip archive."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise UserError(f"{name} is not a readable .zip archive.") from None
    members = [m for m in archive.infolist() if _wanted(m.filename)]
    if len(members) > MAX_ARCHIVE_MEMBERS:
        raise UserError(f"{name} holds {len(members)} images, over the limit of {MAX_ARCHIVE_MEMBERS}; split it into smaller archives.")
    if sum(m.file_size for m in members) > MAX_ARCHIVE_BYTES:
        raise UserError(f"{name} would unpack to more than {MAX_ARCHIVE_BYTES >> 30} GB; split it into smaller archives.")
    for member in members:
        content = io.BytesIO(archive.read(member))
        content.name = Path(member.filename).name  # errors then name the member, not "the uploaded data"
        yield f"{name}/{member.filename}", content


def is_archive(path: Path) -> bool:
    return path.suffix.lower() == ".zip"
