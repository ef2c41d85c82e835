"""Command line: `python -m brain_tumor.predict [--weights DIR|HUB_ID] FILE_OR_DIR... [--json] [--csv FILE]
[--cam-out DIR] [--report DIR] [--method M] [--layer L] [--plane P]`.

Folders and .zip archives are opened (brain_tumor.uploads): images and single DICOM files are classified one
by one; NIfTI volumes and DICOM series are whole scans, answered with a summary and one row per slice. Every
file gets a result or its one-sentence error; an unreadable file never stops the others.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from brain_tumor.batch import classify_items, csv_text, nested_row, result_row
from brain_tumor.card import SHORT_NOTICE, summary_line
from brain_tumor.classes import CLASSES, DISPLAY_NAMES
from brain_tumor.classifier import Classifier
from brain_tumor.errors import UsageError, UserError, exit_status
from brain_tumor.explain import OFFERED
from brain_tumor.uploads import Item, find_files, gather
from brain_tumor.volumes import PLANES


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m brain_tumor.predict", description=f"Classify brain MRI slices. {SHORT_NOTICE}")
    p.add_argument("paths", nargs="+", metavar="FILE_OR_DIR",
                   help="image files (JPEG, PNG, BMP, TIFF, WebP, GIF or DICOM), NIfTI volumes (.nii, .nii.gz), DICOM series, "
                        ".zip archives of them, or folders")
    p.add_argument("--weights", default=None, help="weights folder or Hugging Face Hub id (default: $BRAIN_TUMOR_WEIGHTS, weights/resnet50, weights/baseline)")
    p.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit) to pin")
    p.add_argument("--json", action="store_true", help="one JSON object per line instead of text")
    p.add_argument("--csv", default=None, metavar="FILE", help="also write one row per file (unreadable ones too) to this CSV")
    p.add_argument("--cam-out", default=None, metavar="DIR", help="also write a heatmap overlay PNG per image here")
    p.add_argument("--report", default=None, metavar="DIR", help="also write a one-page PDF report per image here")
    p.add_argument("--method", choices=OFFERED, default=None, help="explanation method (default: the weights' own)")
    p.add_argument("--layer", default=None, help="layer(s) to explain, e.g. layer4 or layer3+layer4 (default: the weights' own)")
    p.add_argument("--plane", choices=list(PLANES), default="axial", help="the plane a NIfTI volume is cut along")
    p.add_argument("--device", default="cpu")
    ray = p.add_argument_group("Ray Data (an archive too large for one machine; pip install \"brain-tumor-mri[ray]\")")
    ray.add_argument("--engine", choices=["local", "ray"], default="local",
                     help="local: this process; ray: Ray Data tasks decode, a pool of Classifier actors scores, Parquet under --out")
    ray.add_argument("--out", default=None, metavar="DIR", help="with --engine ray: the folder of Parquet files (a rerun skips what is done)")
    ray.add_argument("--address", default=None, help="with --engine ray: a running cluster ('auto', or host:port); default: a local Ray for the run")
    ray.add_argument("--cpus", type=int, default=None, help="with --engine ray and a local Ray: the CPUs it may use (default: all)")
    ray.add_argument("--actors", type=int, default=None, help="with --engine ray: Classifier actors (default: one per CPU, less one)")
    ray.add_argument("--batch-size", type=int, default=32, help="with --engine ray: slices per scoring batch")
    ray.add_argument("--heatmaps", action="store_true", help="with --engine ray: a heatmap PNG per slice under DIR/heatmaps")
    return p


def text_line(row: dict, extra: str = "") -> str:
    if row["error"]:
        return f"{row['file']}: error: {row['error']}"
    probs = "  ".join(f"{c} {row[c]:.3f}" for c in CLASSES)
    line = f"{row['file']}: {DISPLAY_NAMES[row['label']]} ({row[row['label']]:.1%})  [{probs}]{extra}"
    return line + (f"  WARNING: {row['warning']}" if row["warning"] else "")


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    if args.engine == "ray":
        return exit_status(lambda: on_ray(args))
    try:
        classifier = Classifier.from_pretrained(args.weights, revision=args.revision, device=args.device)
        if args.method or args.layer:
            classifier.explain_settings(args.method, args.layer)  # a wrong name fails now, in one sentence
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    files = find_files(args.paths)
    if not files:
        print("error: no image files or scans found in the given folders.", file=sys.stderr)
        return 2
    outputs = {name: Path(folder) for name, folder in (("cam", args.cam_out), ("report", args.report)) if folder}
    for folder in outputs.values():
        folder.mkdir(parents=True, exist_ok=True)
    try:
        parts = gather([(str(f), f) for f in files], scans=True, plane=args.plane, limit=None)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    rows, failures = [], 0
    items = [p for p in parts if isinstance(p, Item)]
    for part in parts:
        if not isinstance(part, Item):
            failures += not scan(part, classifier, args, outputs, rows)
    bar = lambda listed: tqdm(listed, desc="classify", unit="file", disable=len(listed) < 5 or None, file=sys.stderr)  # noqa: E731
    if outputs:  # a heatmap (and a report) per slice: explained one by one
        found = [explained_row(item, classifier, args, outputs) for item in bar(items)]
    else:  # predicted in batches
        found = [(row, "") for row in classify_items(classifier, items, bar)[0]]
    for row, extra in found:
        failures += row["error"] is not None
        rows.append(row)
        if args.json:
            print(json.dumps(nested_row(row)))
        elif row["error"]:
            print(text_line(row), file=sys.stderr)
        else:
            print(text_line(row, extra))
    if args.csv:
        Path(args.csv).write_text(csv_text(rows))
    return 1 if failures else 0


def on_ray(args) -> None:
    """--engine ray: the sources scored on Ray Data into Parquet under --out (brain_tumor.ray_engine)."""
    from brain_tumor import ray_engine
    from brain_tumor.weights import resolve_weights

    if not args.out:
        raise UsageError("--engine ray writes Parquet files; name their folder with --out DIR.")
    if args.cam_out or args.report or args.json:
        raise UsageError("--engine ray writes a table (and --heatmaps); --cam-out, --report and --json belong to the local engine.")
    ray_engine.import_ray()  # not installed: one sentence, before anything else
    settings = ray_engine.RaySettings(Path(args.out), resolve_weights(args.weights, revision=args.revision), args.address,
                                      args.actors, args.batch_size, args.heatmaps, args.plane, args.cpus)
    files = find_files(args.paths)
    if not files:
        raise UsageError("no image files or scans found in the given folders.")
    found = ray_engine.run(settings, files)
    rows = ray_engine.read_rows(settings.out)
    print(f"{found['sources']} files: {found['skipped']} already scored, {found['new_rows']} rows added; "
          f"{len(rows)} rows in {settings.out} ({int(rows['error'].notna().sum())} with an error)")
    if args.csv:
        rows.drop(columns=["rows_in_source"]).to_csv(args.csv, index=False)


def explained_row(item, classifier: Classifier, args, outputs: dict[str, Path]) -> tuple[dict, str]:
    """One slice's row with its heatmap and report written; and the text naming what was written."""
    extra = ""
    try:
        if item.error:
            raise UserError(item.error)
        explanation = classifier.explain(item.source, method=args.method, layer=args.layer)
        stem = Path(item.name).stem
        if "cam" in outputs:
            cam_path = outputs["cam"] / f"{stem}_heatmap.png"
            explanation.overlay.save(cam_path)
            extra += f"  heatmap: {cam_path}"
        if "report" in outputs:
            from brain_tumor.report import report_pdf

            report_path = outputs["report"] / f"{stem}_report.pdf"
            report_path.write_bytes(report_pdf(explanation, summary_line(classifier.config), classifier.version))
            extra += f"  report: {report_path}"
        return result_row(item.name, explanation.prediction), extra
    except UserError as error:
        return result_row(item.name, error=str(error)), ""


def scan(part, classifier: Classifier, args, outputs: dict[str, Path], rows: list[dict]) -> bool:
    """Answer one whole scan: its summary (or its error) printed, a row per slice added to `rows`; False on error."""
    from brain_tumor.scan import NOT_SCORED, classify_scan

    if part.error:
        rows.append(result_row(part.name, error=part.error))
        print(f"{part.name}: error: {part.error}", file=sys.stderr)
        return False
    volume = part.volume
    with tqdm(total=len(volume) - sum(volume.outside_head), desc=f"scan {Path(volume.name).name}", unit="slice", file=sys.stderr,
              leave=False) as bar:
        result = classify_scan(classifier, volume, progress=lambda done, total: bar.update(done - bar.n))
    for i, prediction in enumerate(result.predictions):
        rows.append(result_row(f"{volume.name}#{i}", prediction) if prediction else result_row(f"{volume.name}#{i}", error=NOT_SCORED))
    answer = result.to_json()
    stem = Path(volume.name.replace(": ", "_").replace(" ", "_")).name.removesuffix(".gz").removesuffix(".nii")
    if "cam" in outputs:
        path = outputs["cam"] / f"{stem}_key_slice_{result.key_slice}_heatmap.png"
        result.key_explanation.overlay.save(path)
        answer["key_slice"]["heatmap"]["file"] = str(path)
    if "report" in outputs:
        from brain_tumor.report import scan_report_pdf

        path = outputs["report"] / f"{stem}_report.pdf"
        path.write_bytes(scan_report_pdf(result, summary_line(classifier.config)))
        answer["report"] = str(path)
    if args.json:
        print(json.dumps(answer))
        return True
    print(result.counts())
    print(f"  summary: {result.summary}")
    top = ", ".join(f"{i} ({result.tumour_probability(i):.0%})" for i in result.ranking[:5])
    print(f"  most tumour-like slices: {top}")
    for note in volume.notes:
        print(f"  note: {note}")
    if "file" in answer["key_slice"]["heatmap"]:
        print(f"  key slice heatmap: {answer['key_slice']['heatmap']['file']}")
    if "report" in answer:
        print(f"  report: {answer['report']}")
    print(f"  {result.rule.warning}")
    return True


if __name__ == "__main__":
    sys.exit(main())
