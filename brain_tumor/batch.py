"""Many slices at once: classified in batches, one row per file for tables, CSV and JSON.

Every file gets a row: a result, or the one-sentence reason it could not be read. The same row
shape serves the CLI (--csv, --json), the page's batch table and the classify_batch API; the files
come from brain_tumor.uploads, which opens folders and archives.
"""
from __future__ import annotations

import csv
import io
from typing import Callable, Iterable

from PIL import Image

from brain_tumor.classes import CLASSES
from brain_tumor.classifier import Classifier, Prediction
from brain_tumor.errors import UserError
from brain_tumor.images import load_image

CSV_FIELDS = ["file", "label", *CLASSES, "out_of_distribution", "warning", "error"]
BATCH = 16


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


def classify_items(classifier: Classifier, items: Iterable, progress: Callable[[list], Iterable] | None = None
                   ) -> tuple[list[dict], dict[str, Image.Image]]:
    """One row per item (brain_tumor.uploads.Item: a name with a source or an error), in order, the readable ones
    predicted in batches; and the pictures read, by name. `progress` wraps the list of items (a tqdm, say)."""
    items = list(items)
    rows: list[dict | None] = [None] * len(items)
    pictures: dict[str, Image.Image] = {}
    waiting: list[int] = []

    def flush():
        for index, prediction in zip(waiting, classifier.predict_batch([pictures[items[i].name] for i in waiting])):
            rows[index] = result_row(items[index].name, prediction)
        waiting.clear()

    for index, item in enumerate(progress(items) if progress else items):
        try:
            if item.error:
                raise UserError(item.error)
            pictures[item.name] = load_image(item.source)
            waiting.append(index)
        except UserError as error:
            rows[index] = result_row(item.name, error=str(error))
        if len(waiting) == BATCH:
            flush()
    flush()
    return rows, pictures
