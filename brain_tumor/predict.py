"""Command line: `python -m brain_tumor.predict [--weights DIR|HUB_ID] FILE_OR_DIR... [--json] [--csv FILE]
[--cam-out DIR] [--report DIR] [--method M] [--layer L]`.

Folders are walked for images (and extension-less DICOM files). Every file gets a result or its
one-sentence error; an unreadable file never stops the others.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Iterator

from tqdm import tqdm

from brain_tumor.batch import archive_members, csv_text, is_archive, nested_row, result_row
from brain_tumor.card import SHORT_NOTICE, summary_line
from brain_tumor.classes import CLASSES, DISPLAY_NAMES
from brain_tumor.classifier import Classifier
from brain_tumor.errors import UserError
from brain_tumor.explain import OFFERED
from brain_tumor.images import IMAGE_SUFFIXES


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m brain_tumor.predict", description=f"Classify brain MRI slices. {SHORT_NOTICE}")
    p.add_argument("paths", nargs="+", metavar="FILE_OR_DIR", help="image files (JPEG, PNG, BMP, TIFF, WebP, GIF or DICOM), .zip archives of them, or folders")
    p.add_argument("--weights", default=None, help="weights folder or Hugging Face Hub id (default: $BRAIN_TUMOR_WEIGHTS, weights/resnet50, weights/baseline)")
    p.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit) to pin")
    p.add_argument("--json", action="store_true", help="one JSON object per line instead of text")
    p.add_argument("--csv", default=None, metavar="FILE", help="also write one row per file (unreadable ones too) to this CSV")
    p.add_argument("--cam-out", default=None, metavar="DIR", help="also write a heatmap overlay PNG per image here")
    p.add_argument("--report", default=None, metavar="DIR", help="also write a one-page PDF report per image here")
    p.add_argument("--method", choices=OFFERED, default=None, help="explanation method (default: the weights' own)")
    p.add_argument("--layer", default=None, help="layer(s) to explain, e.g. layer4 or layer3+layer4 (default: the weights' own)")
    p.add_argument("--device", default="cpu")
    return p


def find_files(paths: list[str]) -> list[Path]:
    """Files named outright, and inside folders (recursively) image files and extension-less ones (DICOM)."""
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
                            and (p.suffix.lower() in IMAGE_SUFFIXES or p.suffix.lower() == ".zip" or not p.suffix))
        else:
            found.append(path)
    return found


def inputs(files: list[Path]) -> Iterator[tuple[str, object]]:
    """(name, source) per image: files as they are, archives member by member (an unreadable archive: its error)."""
    for path in files:
        if is_archive(path) and path.is_file():
            try:
                yield from archive_members(path.read_bytes(), str(path))
            except UserError as error:
                yield str(path), error
        else:
            yield str(path), path


def text_line(row: dict, extra: str = "") -> str:
    if row["error"]:
        return f"{row['file']}: error: {row['error']}"
    probs = "  ".join(f"{c} {row[c]:.3f}" for c in CLASSES)
    line = f"{row['file']}: {DISPLAY_NAMES[row['label']]} ({row[row['label']]:.1%})  [{probs}]{extra}"
    return line + (f"  WARNING: {row['warning']}" if row["warning"] else "")


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    try:
        classifier = Classifier.from_pretrained(args.weights, revision=args.revision, device=args.device)
        if args.method or args.layer:
            classifier.explain_settings(args.method, args.layer)  # a wrong name fails now, in one sentence
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    files = find_files(args.paths)
    if not files:
        print("error: no image files found in the given folders.", file=sys.stderr)
        return 2
    outputs = {name: Path(folder) for name, folder in (("cam", args.cam_out), ("report", args.report)) if folder}
    for folder in outputs.values():
        folder.mkdir(parents=True, exist_ok=True)
    rows, failures = [], 0
    items = list(inputs(files))
    for name, source in tqdm(items, desc="classify", unit="file", disable=len(items) < 5 or None, file=sys.stderr):
        extra = ""
        try:
            if isinstance(source, UserError):
                raise source
            if outputs:
                explanation = classifier.explain(source, method=args.method, layer=args.layer)
                prediction = explanation.prediction
                stem = Path(name).stem
                if "cam" in outputs:
                    cam_path = outputs["cam"] / f"{stem}_heatmap.png"
                    explanation.overlay.save(cam_path)
                    extra += f"  heatmap: {cam_path}"
                if "report" in outputs:
                    from brain_tumor.report import report_pdf

                    report_path = outputs["report"] / f"{stem}_report.pdf"
                    report_path.write_bytes(report_pdf(explanation, summary_line(classifier.config), classifier.version))
                    extra += f"  report: {report_path}"
            else:
                prediction = classifier.predict(source)
            row = result_row(name, prediction)
        except UserError as error:
            failures += 1
            row = result_row(name, error=str(error))
        rows.append(row)
        if args.json:
            tqdm.write(json.dumps(nested_row(row)), file=sys.stdout)
        elif row["error"]:
            tqdm.write(text_line(row), file=sys.stderr)
        else:
            tqdm.write(text_line(row, extra), file=sys.stdout)
    if args.csv:
        Path(args.csv).write_text(csv_text(rows))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
