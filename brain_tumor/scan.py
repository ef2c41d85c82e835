"""One answer for a whole scan: every slice inside the head scored through one Classifier (in batches), the slices
ranked by tumour probability, the key slice with its heatmap, and a summary with the rule that made it.

The rule (ScanRule) travels with the weights (config.json's scan_rule), because a tumour probability level means
something only for the model that gives it. training.choose_scan_rule picks it on the train part of healthy volumes
and tumour stacks from outside collections and records what it scored on their evaluation part; weights without a
chosen rule use the default, which no volume has checked. Either way the answer is a guide to the slices worth
reading, not a diagnosis.
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

KEY_AREA_SHARE = 0.6  # the key slice's least head area, as a share of the scan's largest (brain_tumor.scan.key_slice)
NOT_SCORED = "outside the head; not scored"  # the error column of a slice's row in tables
UNCHECKED = ("Not validated on whole scans: this summary rule has not been checked on real volumes for these weights. Use it "
             "to find the slices worth reading, not as a diagnosis.")


@dataclasses.dataclass(frozen=True)
class ScanRule:
    """When a scan's summary names a tumour: `min_run` neighbouring slices that each count, a slice counting when it is in
    distribution, not at the edge of the head (its head area at least `edge_share` of the scan's largest), and its tumour
    probability (1 − no tumour) at least `level`. A slice that repeats the one before it (Volume.repeats) is the same
    acquired slice and does not lengthen a run."""
    level: float = 0.5
    min_run: int = 3
    edge_share: float = 0.0
    checked: str = ""  # what the rule scored on held-out volumes (training.choose_scan_rule), or "" when unchecked

    @classmethod
    def of(cls, config) -> "ScanRule":
        """The rule recorded with the weights (config.scan_rule), or the default."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in (getattr(config, "scan_rule", None) or {}).items() if k in known})

    def describe(self) -> str:
        edge = (f", with a head area at least {self.edge_share:.0%} of the scan's largest (not at its edge)"
                if self.edge_share else "")
        return (f"A tumour class is named when at least {self.min_run} neighbouring in-distribution slices{edge} each have a "
                f"tumour probability (1 − no tumour) of at least {self.level:.0%}, a slice that repeats the one before it "
                "counted once; the class is the tumour class with the highest "
                "mean probability over the longest such run. Otherwise the summary is no tumour.")

    @property
    def warning(self) -> str:
        if not self.checked:
            return UNCHECKED
        return f"{self.checked} A guide to the slices worth reading, not a diagnosis."

    def counting(self, predictions: Sequence[Prediction | None], head_area: Sequence[float]) -> list[bool]:
        """Which slices count towards a tumour run."""
        largest = max(head_area, default=0.0) or 1.0
        return [p is not None and not p.out_of_distribution and area >= self.edge_share * largest
                and 1.0 - p.probabilities["notumor"] >= self.level for p, area in zip(predictions, head_area)]

    def summarise(self, predictions: Sequence[Prediction | None], head_area: Sequence[float],
                  repeats: Sequence[bool] | None = None) -> tuple[str, tuple[int, int] | None]:
        """(label, run): the tumour class and the run of slices that named it, or ("notumor", None). `repeats[i]`: slice
        i copies slice i − 1 (Volume.repeats; none when not given)."""
        repeats = list(repeats) if repeats is not None else [False] * len(predictions)
        run = _longest_run(self.counting(predictions, head_area), repeats)
        if run is None or distinct(run, repeats) < self.min_run:
            return "notumor", None
        means = {c: float(np.mean([predictions[i].probabilities[c] for i in range(run[0], run[1] + 1)])) for c in CLASSES if c != "notumor"}
        return max(means, key=means.get), run


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
    rule: ScanRule = ScanRule()

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
            return (f"{DISPLAY_NAMES[self.label]}: no run of {self.rule.min_run} neighbouring slices reached a {self.rule.level:.0%} "
                    "tumour probability.")
        first, last = self.run
        acquired = distinct(self.run, self.volume.repeats)
        count = f"{last - first + 1} slices" + (f", {acquired} distinct" if acquired < last - first + 1 else "")
        return (f"{DISPLAY_NAMES[self.label]}: slices {first}–{last} ({count}) have a tumour probability of "
                f"{self.rule.level:.0%} or more; key slice {self.key_slice}.")

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
            "summary": {"label": self.label, "text": self.summary, "rule": self.rule.describe(),
                        "run": list(self.run) if self.run else None},
            "key_slice": {"slice": self.key_slice, "label": key.label, "probabilities": key.probabilities,
                          "out_of_distribution": key.out_of_distribution,
                          "heatmap": {"target": self.key_explanation.target, "method": self.key_explanation.method,
                                      "layer": self.key_explanation.layer}},
            "ranking": self.ranking,
            "per_slice": self.rows(),
            "notes": self.volume.notes,
            "warning": self.rule.warning,
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


def distinct(run: tuple[int, int], repeats: Sequence[bool]) -> int:
    """How many acquired slices a run of slices holds: its first, and each after it that is not a copy of the one before."""
    return 1 + sum(not repeats[i] for i in range(run[0] + 1, run[1] + 1))


def _longest_run(flags: list[bool], repeats: Sequence[bool]) -> tuple[int, int] | None:
    """The run of flagged neighbours holding the most acquired slices (the first such run on a tie)."""
    best, start = None, None
    for i, flag in enumerate(flags + [False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            if best is None or distinct((start, i - 1), repeats) > distinct(best, repeats):
                best = (start, i - 1)
            start = None
    return best


def classify_scan(classifier: Classifier, scan: Volume | str | os.PathLike | Sequence[str | os.PathLike], plane: str = "axial",
                  progress: Callable[[int, int], None] | None = None) -> ScanResult:
    """Score every slice of a scan inside the head (in batches; `progress(done, total)` after each) and summarise.

    scan: a Volume, or a NIfTI file, a DICOM series' folder or .zip, or its files (read by brain_tumor.uploads; cut
    along `plane` when it is a NIfTI volume). A source holding several scans raises a UsageError naming them."""
    volume = scan if isinstance(scan, Volume) else read_one_scan(scan, plane)
    repeats = volume.repeats
    todo = [i for i, outside in enumerate(volume.outside_head) if not outside and not repeats[i]]
    predictions: list[Prediction | None] = [None] * len(volume)
    for begin in range(0, len(todo), BATCH):
        chunk = todo[begin:begin + BATCH]
        pictures = [volume.picture(i) for i in chunk]
        for i, prediction in zip(chunk, classifier.predict_batch(pictures)):
            predictions[i] = prediction
        if progress:
            progress(min(begin + BATCH, len(todo)), len(todo))
    for i, copy in enumerate(repeats):  # a copy of the slice before it gets that slice's answer
        if copy and not volume.outside_head[i]:
            predictions[i] = predictions[i - 1]
    rule = ScanRule.of(classifier.config)
    areas = volume.head_area  # computed from every slice: once
    label, run = rule.summarise(predictions, areas, repeats)
    key = key_slice(predictions, areas, rule, run)
    explanation = classifier.explain(volume.picture(key))
    return ScanResult(volume, predictions, key, explanation, label, run, classifier.version, rule)


def key_slice(predictions: Sequence[Prediction | None], head_area: Sequence[float], rule: ScanRule, run: tuple[int, int] | None) -> int:
    """The slice to show: the most tumour-like slice of the run that named a tumour (of every scored slice when none
    did) that is in distribution and in the head's wider part (a head area at least KEY_AREA_SHARE of the scan's
    largest, or the rule's edge share if larger): a slice of the brain, not of the neck, the skull base or the vertex.
    An edge or out-of-distribution slice only when there is no other."""
    scored = [i for i, p in enumerate(predictions) if p is not None]
    pool = list(range(run[0], run[1] + 1)) if run is not None else scored
    largest = max(head_area, default=0.0) or 1.0
    inner = [i for i in pool if head_area[i] >= max(rule.edge_share, KEY_AREA_SHARE) * largest]
    typical = [i for i in pool if not predictions[i].out_of_distribution]
    candidates = [i for i in inner if not predictions[i].out_of_distribution] or inner or typical or pool
    return max(candidates, key=lambda i: 1.0 - predictions[i].probabilities["notumor"])
