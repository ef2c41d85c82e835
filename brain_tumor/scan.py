"""One answer for a whole scan: every slice inside the head scored through one Classifier (in batches), the slices
ranked by tumour probability, the key slice with its heatmap, and a summary with the rule that made it.

The rule is not validated on real volumes (the model learnt from single slices), so every answer says that it is
a guide to the slices, not a diagnosis.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from brain_tumor.batch import BATCH
from brain_tumor.classes import CLASSES, DISPLAY_NAMES
from brain_tumor.classifier import Classifier, Explanation, Prediction
from brain_tumor.errors import UsageError, UserError
from brain_tumor.uploads import find_files, gather, scans_of
from brain_tumor.volumes import Volume

TUMOUR_LEVEL, MIN_RUN = 0.5, 3
RULE = (f"A tumour class is named when at least {MIN_RUN} neighbouring in-distribution slices each have a tumour "
        f"probability (1 − no tumour) of at least {TUMOUR_LEVEL:.0%}; the class is the tumour class with the highest mean "
        "probability over the longest such run. Otherwise the summary is no tumour.")
NOT_SCORED = "outside the head; not scored"  # the error column of a slice's row in tables
WARNING = ("Not validated on whole scans: the model was trained and measured on single 2D slices, and this summary rule has "
           "not been checked on real volumes. Use it to find the slices worth reading, not as a diagnosis.")


@dataclasses.dataclass
class ScanResult:
    """The answer for one scan. `predictions[i]` is None for a slice outside the head (not scored)."""
    volume: Volume
    predictions: list[Prediction | None]
    key_slice: int
    key_explanation: Explanation
    label: str
    run: tuple[int, int] | None  # first and last slice of the run that named a tumour
    weights_version: str

    def picture(self, index: int) -> Image.Image:
        return self.volume.picture(index)

    def tumour_probability(self, index: int) -> float | None:
        p = self.predictions[index]
        return None if p is None else 1.0 - p.probabilities["notumor"]

    @property
    def ranking(self) -> list[int]:
        """Scored slices, most tumour-like first (out-of-distribution slices after the others)."""
        scored = [i for i, p in enumerate(self.predictions) if p is not None]
        return sorted(scored, key=lambda i: (self.predictions[i].out_of_distribution, -self.tumour_probability(i)))

    def counts(self) -> str:
        """What the scan is and what was scored, in one line."""
        scored = sum(p is not None for p in self.predictions)
        flagged = sum(bool(p and p.out_of_distribution) for p in self.predictions)
        return (f"{self.volume.describe()}: {scored} scored, {sum(self.volume.outside_head)} outside the head, "
                f"{flagged} out of distribution")

    @property
    def summary(self) -> str:
        if self.run is None:
            return f"{DISPLAY_NAMES[self.label]}: no run of {MIN_RUN} neighbouring slices reached a {TUMOUR_LEVEL:.0%} tumour probability."
        first, last = self.run
        return (f"{DISPLAY_NAMES[self.label]}: slices {first}–{last} ({last - first + 1} slices) have a tumour probability of "
                f"{TUMOUR_LEVEL:.0%} or more; key slice {self.key_slice}.")

    def rows(self) -> list[dict]:
        """One row per slice: index, scored, label, probabilities, tumour probability, out-of-distribution flag."""
        rows = []
        for i, p in enumerate(self.predictions):
            rows.append({"slice": i, "scored": p is not None, "outside_head": self.volume.outside_head[i],
                         "label": p.label if p else None, "probabilities": p.probabilities if p else None,
                         "tumour_probability": self.tumour_probability(i), "out_of_distribution": p.out_of_distribution if p else None})
        return rows

    def to_json(self) -> dict:
        """The whole answer as plain JSON (no images)."""
        key = self.predictions[self.key_slice]
        return {
            "scan": self.volume.name, "kind": self.volume.kind, "plane": self.volume.plane,
            "slices": len(self.volume), "scored": sum(p is not None for p in self.predictions),
            "skipped_outside_head": sum(self.volume.outside_head),
            "out_of_distribution_slices": sum(bool(p and p.out_of_distribution) for p in self.predictions),
            "summary": {"label": self.label, "text": self.summary, "rule": RULE,
                        "run": list(self.run) if self.run else None},
            "key_slice": {"slice": self.key_slice, "label": key.label, "probabilities": key.probabilities,
                          "out_of_distribution": key.out_of_distribution,
                          "heatmap": {"target": self.key_explanation.target, "method": self.key_explanation.method,
                                      "layer": self.key_explanation.layer}},
            "ranking": self.ranking,
            "per_slice": self.rows(),
            "notes": self.volume.notes,
            "warning": WARNING,
            "weights_version": self.weights_version,
        }


def read_one_scan(source: str | os.PathLike | Sequence[str | os.PathLike], plane: str = "axial") -> Volume:
    """The one scan in a file, folder, archive or list of files; a one-sentence UserError when there is none or several."""
    paths = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    name = str(paths[0]) if len(paths) == 1 else f"the {len(paths)} files"
    files = find_files(paths)
    scans = scans_of(gather([(str(f), f) for f in files], scans=True, plane=plane, limit=None), name)
    if len(scans) > 1:
        raise UsageError(f"{name} holds {len(scans)} scans ({'; '.join(s.name for s in scans)}); pass one, or answer each "
                         "with brain_tumor.uploads.gather.")
    if scans[0].error:
        raise UserError(scans[0].error)
    return scans[0].volume


def _longest_run(flags: list[bool]) -> tuple[int, int] | None:
    best, start = None, None
    for i, flag in enumerate(flags + [False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            if best is None or i - start > best[1] - best[0] + 1:
                best = (start, i - 1)
            start = None
    return best


def classify_scan(classifier: Classifier, scan: Volume | str | os.PathLike | Sequence[str | os.PathLike], plane: str = "axial",
                  progress: Callable[[int, int], None] | None = None) -> ScanResult:
    """Score every slice of a scan inside the head (in batches; `progress(done, total)` after each) and summarise.

    scan: a Volume, or a NIfTI file, a DICOM series' folder or .zip, or its files (read by brain_tumor.uploads; cut
    along `plane` when it is a NIfTI volume). A source holding several scans raises a UsageError naming them."""
    volume = scan if isinstance(scan, Volume) else read_one_scan(scan, plane)
    todo = [i for i, outside in enumerate(volume.outside_head) if not outside]
    predictions: list[Prediction | None] = [None] * len(volume)
    for begin in range(0, len(todo), BATCH):
        chunk = todo[begin:begin + BATCH]
        pictures = [volume.picture(i) for i in chunk]
        for i, prediction in zip(chunk, classifier.predict_batch(pictures)):
            predictions[i] = prediction
        if progress:
            progress(min(begin + BATCH, len(todo)), len(todo))
    tumour = [p is not None and not p.out_of_distribution and 1.0 - p.probabilities["notumor"] >= TUMOUR_LEVEL for p in predictions]
    run = _longest_run(tumour)
    if run is not None and run[1] - run[0] + 1 < MIN_RUN:
        run = None
    if run is None:
        label = "notumor"
    else:
        means = {c: float(np.mean([predictions[i].probabilities[c] for i in range(run[0], run[1] + 1)])) for c in CLASSES if c != "notumor"}
        label = max(means, key=means.get)
    in_distribution = [i for i in todo if not predictions[i].out_of_distribution] or todo
    key = max(in_distribution, key=lambda i: 1.0 - predictions[i].probabilities["notumor"])
    explanation = classifier.explain(volume.picture(key))
    return ScanResult(volume, predictions, key, explanation, label, run, classifier.version)
