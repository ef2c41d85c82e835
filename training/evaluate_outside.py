"""How a model does on brain MRI from collections outside the Kaggle set:
`python -m training.evaluate_outside --weights W --data ../shared/data/outside --out DIR [--part eval]`.

Per collection and sequence: the share of tumour slices where a tumour is found (any tumour class), the share named
with the right class, the share of healthy slices answered "no tumour", and the share flagged out of distribution, each
with a 95% Wilson interval. Per scan: each TCGA-LGG patient's stack (every sequence, slices in order) and each NiChart
volume through brain_tumor.scan.classify_scan, with the share of right summaries. The heatmap's pointing game on
TCGA-LGG tumour slices (its peak inside the tumour mask), and the tumour slices found by the tumour's size. Writes
slices.csv (every slice's probabilities, for training.choose_scan_rule), scans.csv, metrics.json, summary.md and
outside.png; --write-config stores the figures in the weights folder's config.json and model card. The part is one of
the split's (training/splits/outside.json): the evaluation part reports; the train part is what a scan rule is chosen on.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from brain_tumor.batch import BATCH
from brain_tumor.classes import CLASSES
from brain_tumor.classifier import Classifier
from brain_tumor.errors import exit_status
from brain_tumor.scan import ScanRule, classify_scan
from training import outside
from training.records import weights_folder

PROBABILITY_COLUMNS = [f"p_{c}" for c in CLASSES]
# Tumour slices grouped by the share of the slice their mask covers (the evaluation part's quartiles are near 1%, 2.8% and
# 4.5%): fixed edges, so that reports of different models compare.
SIZE_BINS = ((0.0, 0.01, "under 1%"), (0.01, 0.025, "1-2.5%"), (0.025, 0.05, "2.5-5%"), (0.05, 1.01, "5% or more"))


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default=None, help="weights folder or Hub id (default: the shipped weights)")
    p.add_argument("--data", default="../shared/data/outside", help="the outside/ folder (tcga-lgg/, oasis/, nichart/)")
    p.add_argument("--part", choices=outside.PARTS, default="eval", help="which part of each collection's split")
    p.add_argument("--out", default="outside-report", help="where the tables and the plot go")
    p.add_argument("--cam-slices", type=int, default=120,
                   help="TCGA-LGG tumour slices per sequence whose heatmap is scored (evenly spread; 0: none, -1: all)")
    p.add_argument("--scans-only", action="store_true", help="only the TCGA-LGG stacks and NiChart volumes (what a scan rule is chosen on)")
    p.add_argument("--max-subjects", type=int, default=None, help="at most this many patients or subjects per collection (quick runs)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--backend", choices=["auto", "torch", "onnx"], default="auto", help="what computes the predictions")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for PyTorch (0: its default)")
    p.add_argument("--write-config", action="store_true", help="store the figures in the (local) weights folder's config.json and card")
    return p


def wilson(hits: int, n: int) -> list[float]:
    """95% Wilson score interval of a share."""
    if n == 0:
        return [0.0, 1.0]
    z, share = 1.959964, hits / n
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [max(0.0, centre - half), min(1.0, centre + half)]


def share(flags) -> dict:
    flags = [bool(f) for f in flags]
    return {"share": sum(flags) / len(flags) if flags else float("nan"), "n": len(flags), "ci95": wilson(sum(flags), len(flags))}


def _subjects(items: list[outside.OutsideSlice], limit: int | None) -> list[str]:
    subjects = sorted({s.subject for s in items})
    return subjects[:limit] if limit else subjects


def _row(item: outside.OutsideSlice, prediction, head_share: float, repeat: bool = False) -> dict:
    return {"collection": item.collection, "subject": item.subject, "sequence": item.sequence, "index": item.index,
            "label": item.label, "edge": int(item.edge), "head_share": round(head_share, 4), "repeat": int(repeat),
            "tumour_share": round(outside.tumour_share(item), 5),
            "predicted": prediction.label, "ood": int(prediction.out_of_distribution),
            **{f"p_{c}": round(prediction.probabilities[c], 5) for c in CLASSES}}


def score_scans(classifier: Classifier, root: Path, items: list[outside.OutsideSlice], limit: int | None):
    """Every TCGA-LGG stack and NiChart volume of the part through classify_scan: (slice rows, scan rows)."""
    slice_rows, scan_rows = [], []
    tcga = [s for s in items if s.collection == "tcga-lgg"]
    by_key = {(s.subject, s.sequence, s.index): s for s in tcga}
    jobs = [("tcga-lgg", p, q) for p in _subjects(tcga, limit) for q in outside.TCGA_SEQUENCES]
    nichart = {(s.subject, s.sequence): s.path for s in items if s.collection == "nichart"}
    jobs += [("nichart", p, q) for p in _subjects([s for s in items if s.collection == "nichart"], limit) for q in outside.NICHART_SEQUENCES
             if (p, q) in nichart]
    for collection, subject, sequence in tqdm(jobs, desc="scans", unit="scan"):
        if collection == "tcga-lgg":
            volume, numbers = outside.tcga_stack(root, subject, sequence)
            slices = [by_key[(subject, sequence, n)] for n in numbers]
            truth = "glioma" if any(s.label == "glioma" for s in slices) else "notumor"
        else:
            volume = outside.read_volume(nichart[(subject, sequence)])
            slices = [outside.OutsideSlice("nichart", subject, sequence, i, "notumor", nichart[(subject, sequence)])
                      for i in range(len(volume))]
            truth = "notumor"
        result = classify_scan(classifier, volume)
        areas = volume.head_area
        largest = max(areas) or 1.0
        for item, prediction, area, repeat in zip(slices, result.predictions, areas, volume.repeats):
            if prediction is not None:
                slice_rows.append(_row(item, prediction, area / largest, repeat))
        scan_rows.append({"collection": collection, "subject": subject, "sequence": sequence, "truth": truth,
                          "summary": result.label, "run": "" if result.run is None else f"{result.run[0]}-{result.run[1]}",
                          "slices": len(volume), "scored": sum(p is not None for p in result.predictions),
                          "key_slice": result.key_slice})
    return slice_rows, scan_rows


def score_oasis(classifier: Classifier, items: list[outside.OutsideSlice], limit: int | None) -> list[dict]:
    items = [s for s in items if s.collection == "oasis"]
    if limit:
        items = [s for s in items if s.subject in _subjects(items, limit)]
    rows = []
    for begin in tqdm(range(0, len(items), BATCH), desc="oasis", unit="batch"):
        chunk = items[begin:begin + BATCH]
        rows += [_row(s, p, 1.0) for s, p in zip(chunk, classifier.predict_batch([outside.picture(s) for s in chunk]))]
    return rows


def pointing(classifier: Classifier, items: list[outside.OutsideSlice], per_sequence: int, limit: int | None) -> dict:
    """The heatmap (for the glioma class) peaks inside the tumour mask: per TCGA-LGG sequence."""
    found = {}
    tumour = [s for s in items if s.collection == "tcga-lgg" and s.label == "glioma"]
    if limit:
        tumour = [s for s in tumour if s.subject in _subjects(tumour, limit)]
    for sequence in outside.TCGA_SEQUENCES:
        chosen = [s for s in tumour if s.sequence == sequence]
        if per_sequence >= 0 and len(chosen) > per_sequence:
            chosen = [chosen[i] for i in np.linspace(0, len(chosen) - 1, per_sequence).round().astype(int)]
        hits, areas = [], []
        for item in tqdm(chosen, desc=f"heatmaps ({sequence})", unit="slice"):
            explanation = classifier.explain(outside.picture(item), target="glioma")
            heatmap = explanation.heatmap
            mask = outside.tumour_mask(item, heatmap.shape)
            peak = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
            hits.append(bool(mask[peak]))
            areas.append(float(mask.mean()))
        found[sequence] = {**share(hits), "mask_share_of_slice": float(np.mean(areas)) if areas else float("nan")}
    return found


def measure(slice_rows: list[dict], scan_rows: list[dict], points: dict) -> dict:
    """The figures of the benchmark from the slice and scan rows; a slice that repeats the one before it (a thick
    acquisition resampled) is counted once."""
    def rows(collection, sequence=None, label=None, edge=False):
        return [r for r in slice_rows if r["collection"] == collection and (sequence is None or r["sequence"] == sequence)
                and (label is None or r["label"] == label) and bool(r["edge"]) == edge and not r.get("repeat")]

    slices: dict = {}
    for sequence in outside.TCGA_SEQUENCES:
        tumour = rows("tcga-lgg", sequence, "glioma")
        healthy = rows("tcga-lgg", sequence, "notumor")
        slices[f"tcga-lgg/{sequence}"] = {
            "tumour_found": share(r["predicted"] != "notumor" for r in tumour),
            "named_glioma": share(r["predicted"] == "glioma" for r in tumour),
            "tumour_slices_flagged_ood": share(r["ood"] for r in tumour),
            "found_by_size": {name: share(r["predicted"] != "notumor" for r in tumour if low <= r["tumour_share"] < high)
                              for low, high, name in SIZE_BINS},
            "tumour_free_slices_no_tumour": share(r["predicted"] == "notumor" for r in healthy),
        }
    slices["oasis/T1"] = {"no_tumour": share(r["predicted"] == "notumor" for r in rows("oasis")),
                          "flagged_ood": share(r["ood"] for r in rows("oasis"))}
    for sequence in outside.NICHART_SEQUENCES:
        got = rows("nichart", sequence)
        slices[f"nichart/{sequence}"] = {"no_tumour": share(r["predicted"] == "notumor" for r in got),
                                         "flagged_ood": share(r["ood"] for r in got)}
    scans: dict = {}
    for collection, sequences in (("tcga-lgg", outside.TCGA_SEQUENCES), ("nichart", outside.NICHART_SEQUENCES)):
        for sequence in sequences:
            got = [r for r in scan_rows if r["collection"] == collection and r["sequence"] == sequence]
            if collection == "tcga-lgg":
                got = [r for r in got if r["truth"] == "glioma"]
                scans[f"{collection}/{sequence}"] = {"tumour_summary": share(r["summary"] != "notumor" for r in got),
                                                     "glioma_summary": share(r["summary"] == "glioma" for r in got)}
            else:
                scans[f"{collection}/{sequence}"] = {"no_tumour_summary": share(r["summary"] == "notumor" for r in got)}
    tumour_stacks = [r for r in scan_rows if r["collection"] == "tcga-lgg" and r["truth"] == "glioma"]
    healthy = [r for r in scan_rows if r["collection"] == "nichart"]
    scans["tcga-lgg/all"] = {"tumour_summary": share(r["summary"] != "notumor" for r in tumour_stacks)}
    scans["nichart/all"] = {"no_tumour_summary": share(r["summary"] == "notumor" for r in healthy)}
    return {"slices": slices, "scans": scans, "pointing_game": points}


def _pct(entry: dict) -> str:
    if not entry["n"]:
        return "–"
    low, high = entry["ci95"]
    return f"{100 * entry['share']:.1f}% [{100 * low:.0f}–{100 * high:.0f}] (n={entry['n']})"


def summary_markdown(metrics: dict, weights: str, part: str) -> str:
    s, c, pg = metrics["slices"], metrics["scans"], metrics["pointing_game"]
    lines = [f"# Outside the Kaggle collection: `{weights}`", "",
             f"Part: **{part}** of each collection (training/splits/outside.json). Shares with 95% Wilson intervals.", "",
             "| slices | tumour found | named glioma | no tumour (healthy) | flagged out of distribution |",
             "| --- | --- | --- | --- | --- |"]
    for sequence in outside.TCGA_SEQUENCES:
        e = s[f"tcga-lgg/{sequence}"]
        lines.append(f"| TCGA-LGG {sequence} | {_pct(e['tumour_found'])} | {_pct(e['named_glioma'])} | "
                     f"{_pct(e['tumour_free_slices_no_tumour'])} (tumour-free slices) | {_pct(e['tumour_slices_flagged_ood'])} (tumour slices) |")
    for key, name in (("oasis/T1", "OASIS T1"), ("nichart/T1", "NiChart T1"), ("nichart/FL", "NiChart FLAIR")):
        lines.append(f"| {name} | – | – | {_pct(s[key]['no_tumour'])} | {_pct(s[key]['flagged_ood'])} |")
    lines += ["", "| TCGA-LGG tumour found, by the tumour's size (its mask's share of the slice) | "
              + " | ".join(name for _, _, name in SIZE_BINS) + " |", "| --- |" + " --- |" * len(SIZE_BINS)]
    for sequence in outside.TCGA_SEQUENCES:
        bins = s[f"tcga-lgg/{sequence}"]["found_by_size"]
        lines.append(f"| {sequence} | " + " | ".join(_pct(bins[name]) for _, _, name in SIZE_BINS) + " |")
    lines += ["", "| whole scans | right summary |", "| --- | --- |"]
    for sequence in outside.TCGA_SEQUENCES:
        e = c[f"tcga-lgg/{sequence}"]
        lines.append(f"| TCGA-LGG {sequence} stacks: a tumour (glioma) | {_pct(e['tumour_summary'])} ({_pct(e['glioma_summary'])}) |")
    for sequence in outside.NICHART_SEQUENCES:
        lines.append(f"| NiChart {sequence} volumes: no tumour | {_pct(c[f'nichart/{sequence}']['no_tumour_summary'])} |")
    lines += ["", "| heatmap on TCGA-LGG tumour slices | pointing game (peak in the mask) | mask's mean share of the slice |",
              "| --- | --- | --- |"]
    for sequence, e in pg.items():
        lines.append(f"| {sequence} | {_pct(e)} | {100 * e['mask_share_of_slice']:.1f}% |")
    lines += ["", f"Scan rule: {metrics['scan_rule']}", "", "![outside](outside.png)", ""]
    return "\n".join(lines)


def plot(metrics: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s, c = metrics["slices"], metrics["scans"]
    bars = [(f"TCGA {q}: tumour found", s[f"tcga-lgg/{q}"]["tumour_found"]) for q in outside.TCGA_SEQUENCES]
    bars += [(f"TCGA {q}: named glioma", s[f"tcga-lgg/{q}"]["named_glioma"]) for q in outside.TCGA_SEQUENCES]
    bars += [("OASIS: no tumour", s["oasis/T1"]["no_tumour"]), ("NiChart T1: no tumour", s["nichart/T1"]["no_tumour"]),
             ("NiChart FLAIR: no tumour", s["nichart/FL"]["no_tumour"])]
    bars += [("TCGA stacks: a tumour", c["tcga-lgg/all"]["tumour_summary"]), ("NiChart volumes: no tumour", c["nichart/all"]["no_tumour_summary"])]
    bars += [(f"heatmap on tumour ({q})", e) for q, e in metrics["pointing_game"].items()]
    fig, ax = plt.subplots(figsize=(8, 0.34 * len(bars) + 1.2), layout="constrained")
    ys = np.arange(len(bars))[::-1]
    values = [100 * (e["share"] if e["n"] else 0) for _, e in bars]
    errors = np.array([[100 * (e["share"] - e["ci95"][0]), 100 * (e["ci95"][1] - e["share"])] if e["n"] else [0, 0] for _, e in bars]).T.clip(0)
    ax.barh(ys, values, xerr=errors, color=["#2563eb"] * 6 + ["#16a34a"] * 3 + ["#9333ea"] * 2 + ["#ea580c"] * (len(bars) - 11), capsize=2)
    ax.set_yticks(ys, [f"{name} (n={e['n']})" for name, e in bars], fontsize=8)
    ax.set_xlim(0, 100)
    ax.set_xlabel("% (95% interval)")
    ax.axvline(90, color="0.6", lw=0.8, ls="--")
    ax.set_title(title, fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as handle:
        if rows:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


def evaluate(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    root = Path(args.data)
    classifier = Classifier.from_pretrained(args.weights, device=args.device, backend=args.backend)
    items = outside.in_part(outside.all_slices(root), args.part)
    slice_rows, scan_rows = score_scans(classifier, root, items, args.max_subjects)
    if not args.scans_only:
        slice_rows += score_oasis(classifier, items, args.max_subjects)
    points = pointing(classifier, items, args.cam_slices, args.max_subjects) if args.cam_slices and not args.scans_only else {}
    metrics = measure(slice_rows, scan_rows, points)
    metrics.update(weights=str(classifier.source), part=args.part, split=outside.SPLIT_FILE.name,
                   scan_rule=ScanRule.of(classifier.config).describe())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _write_csv(out / "slices.csv", slice_rows)
    _write_csv(out / "scans.csv", scan_rows)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (out / "summary.md").write_text(summary_markdown(metrics, metrics["weights"], args.part))
    plot(metrics, out / "outside.png", f"{classifier.config.architecture}: outside collections, {args.part} part")
    if args.write_config:
        from training.records import record_outside_metrics

        record_outside_metrics(weights_folder(Path(classifier.source)), metrics)
    print(headline(metrics))
    print(f"report: {out / 'summary.md'}")
    return metrics


def headline(metrics: dict) -> str:
    s, c = metrics["slices"], metrics["scans"]
    found = ", ".join(f"{q} {100 * s[f'tcga-lgg/{q}']['tumour_found']['share']:.0f}%" for q in outside.TCGA_SEQUENCES)
    named = ", ".join(f"{q} {100 * s[f'tcga-lgg/{q}']['named_glioma']['share']:.0f}%" for q in outside.TCGA_SEQUENCES)
    return (f"TCGA-LGG tumour slices found: {found}; named glioma: {named} | OASIS no tumour "
            f"{100 * s['oasis/T1']['no_tumour']['share']:.1f}% | NiChart volumes no tumour "
            f"{c['nichart/all']['no_tumour_summary']['n'] and round(100 * c['nichart/all']['no_tumour_summary']['share'])}% "
            f"(n={c['nichart/all']['no_tumour_summary']['n']}) | TCGA-LGG stacks a tumour "
            f"{100 * c['tcga-lgg/all']['tumour_summary']['share']:.0f}% (n={c['tcga-lgg/all']['tumour_summary']['n']})")


def main(argv: list[str] | None = None) -> int:
    return exit_status(lambda: evaluate(get_args_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
