"""Models or attempts side by side, outside the Kaggle collection and on it:
`python -m training.compare_outside docs/outside/o1 docs/outside/o13 ... --out docs/outside/attempts.png`.

Each folder holds `metrics.json` from training.evaluate_outside (the evaluation part) and `kaggle.json`, the
`metrics.json` of training.evaluate on Kaggle's Testing split (optional: without it the Kaggle columns are empty).
Prints one table row per folder (each TCGA-LGG sequence's share of tumour slices found and named glioma, OASIS
slices called no tumour, NiChart volumes called healthy, TCGA-LGG stacks found, Kaggle all / clean accuracy and clean
macro-F1) and draws the two trades the outside-collections work is judged on: Kaggle clean accuracy against the lowest
share found, and healthy volumes passed against tumour stacks found, with the targets marked.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from brain_tumor.card import count_of
from brain_tumor.errors import UsageError, exit_status
from training.plots import trade_off_plot

SEQUENCES = ("post", "pre", "flair")
# The outside-collections targets the plot marks: tumour slices found in every sequence, stacks found, Kaggle clean accuracy
# (and every healthy volume passed).
TARGETS = {"found": 0.90, "stacks": 0.90, "kaggle_clean": 0.98}


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+", help="report folders, each with metrics.json (and kaggle.json)")
    p.add_argument("--out", default="outside-attempts.png", help="where the plot goes")
    return p


def read_report(folder: Path) -> tuple[dict, dict | None]:
    """A folder's outside metrics and, when it has them, its Kaggle metrics."""
    path = folder / "metrics.json"
    if not path.is_file():
        raise UsageError(f"{folder} has no metrics.json; pass folders written by training.evaluate_outside.")
    metrics = json.loads(path.read_text())
    if "slices" not in metrics or "scans" not in metrics:
        raise UsageError(f"{path} is not an outside report; pass folders written by training.evaluate_outside.")
    kaggle = folder / "kaggle.json"
    return metrics, json.loads(kaggle.read_text()) if kaggle.is_file() else None


def summarise(name: str, metrics: dict, kaggle: dict | None) -> dict:
    """The figures of one report that the table and the plot show (shares in 0..1; the whole-scan figures as the report's
    entries over every volume and every stack, {"share", "n", ...})."""
    slices, scans = metrics["slices"], metrics["scans"]
    row = {"name": name}
    for what, key in (("found", "tumour_found"), ("named", "named_glioma")):
        row[what] = {s: slices[f"tcga-lgg/{s}"][key]["share"] for s in SEQUENCES}
    row["oasis"] = slices["oasis/T1"]["no_tumour"]["share"]
    row["healthy"] = scans["nichart/all"]["no_tumour_summary"]
    row["stacks"] = scans["tcga-lgg/all"]["tumour_summary"]
    row["kaggle"] = None if kaggle is None else {"all": kaggle["accuracy"], "clean": kaggle["clean"]["accuracy"],
                                                 "clean_macro_f1": kaggle["clean"]["macro_f1"]}
    return row


def table(rows: list[dict]) -> str:
    def pct(x: float) -> str:
        return f"{100 * x:.1f}%"

    lines = [("| model | found: post / pre / FLAIR | named: post / pre / FLAIR | OASIS no tumour | NiChart volumes healthy "
              "| stacks a tumour | Kaggle all / clean / clean macro-F1 |"),
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        k = r["kaggle"]
        kaggle = f"{pct(k['all'])} / {pct(k['clean'])} / {k['clean_macro_f1']:.3f}" if k else "–"
        lines.append(f"| {r['name']} | {' / '.join(pct(r['found'][s]) for s in SEQUENCES)} "
                     f"| {' / '.join(pct(r['named'][s]) for s in SEQUENCES)} | {pct(r['oasis'])} "
                     f"| {count_of(r['healthy'])} | {count_of(r['stacks'])} | {kaggle} |")
    return "\n".join(lines)


def compare(args: argparse.Namespace) -> None:
    reports = {Path(f): read_report(Path(f)) for f in args.folders}
    parts = {metrics.get("part", "eval") for metrics, _ in reports.values()}
    if len(parts) > 1:
        raise UsageError(f"the folders measure different parts ({', '.join(sorted(parts))}); compare one part at a time.")
    rows = [summarise(folder.name, *report) for folder, report in reports.items()]
    print(table(rows))
    trade_off_plot(rows, TARGETS, Path(args.out))
    print(f"plot: {args.out}")


def main(argv: list[str] | None = None) -> int:
    return exit_status(lambda: compare(get_args_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
