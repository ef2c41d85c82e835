"""The predict command: text, JSON and CSV output, folders and archives, heatmaps and PDF reports."""
from __future__ import annotations

import csv
import json
import shutil
import zipfile

import pytest

from brain_tumor import CLASSES
from tests.helpers import EXAMPLES, one_sentence, run_module


@pytest.fixture()
def folder(tmp_path):
    """Two slices, an unreadable file and an extension-less DICOM-like name in a sub-folder, and a zip of them."""
    root = tmp_path / "scans"
    (root / "sub").mkdir(parents=True)
    shutil.copy(EXAMPLES[0], root / "a.jpg")
    shutil.copy(EXAMPLES[2], root / "sub" / "IM0001")
    (root / "notes.jpg").write_text("not an image")
    with zipfile.ZipFile(tmp_path / "batch.zip", "w") as archive:
        archive.write(EXAMPLES[6], "slices/p.jpg")
        archive.writestr("slices/broken.png", b"nope")
        archive.writestr("__MACOSX/._p.jpg", b"resource fork")
    return root


def test_text_output_has_a_label_and_four_probabilities(tiny_baseline, tmp_path):
    result = run_module("brain_tumor.predict", "--weights", tiny_baseline, *EXAMPLES, "--cam-out", tmp_path / "cams")
    lines = result.stdout.strip().splitlines()
    assert len(lines) == len(EXAMPLES)
    assert all(sum(f"{c} " in line for c in CLASSES) == 4 for line in lines)
    assert len(list((tmp_path / "cams").glob("*.png"))) == len(EXAMPLES)


def test_folders_and_archives_give_a_row_per_file_unreadable_ones_included(tiny_baseline, folder, tmp_path):
    out = tmp_path / "rows.csv"
    result = run_module("brain_tumor.predict", "--weights", tiny_baseline, folder, tmp_path / "batch.zip", "--csv", out, expect=1)
    rows = {r["file"].replace(str(tmp_path) + "/", ""): r for r in csv.DictReader(open(out))}
    assert set(rows) == {"scans/a.jpg", "scans/notes.jpg", "scans/sub/IM0001", "batch.zip/slices/p.jpg", "batch.zip/slices/broken.png"}
    assert rows["scans/a.jpg"]["label"] in CLASSES and rows["scans/a.jpg"]["error"] == ""
    assert abs(sum(float(rows["scans/a.jpg"][c]) for c in CLASSES) - 1) < 1e-5
    for bad in ("scans/notes.jpg", "batch.zip/slices/broken.png"):
        assert rows[bad]["label"] == "" and one_sentence(rows[bad]["error"])
    assert "broken.png is not an image" in rows["batch.zip/slices/broken.png"]["error"]
    assert "Traceback" not in result.stderr and "notes.jpg: error:" in result.stderr


def test_json_is_one_object_per_line_with_an_error_key(tiny_baseline, folder):
    result = run_module("brain_tumor.predict", "--weights", tiny_baseline, folder, "--json", expect=1)
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 3 and all(set(r) >= {"file", "label", "probabilities", "out_of_distribution", "warning", "error"} for r in records)
    failed = [r for r in records if r["error"]]
    assert len(failed) == 1 and failed[0]["probabilities"] is None


def test_report_is_a_one_page_pdf(tiny_baseline, tmp_path):
    run_module("brain_tumor.predict", "--weights", tiny_baseline, EXAMPLES[0], "--report", tmp_path / "reports")
    assert (tmp_path / "reports" / f"{EXAMPLES[0].stem}_report.pdf").read_bytes().startswith(b"%PDF")


def test_report_names_what_it_shows(tiny_baseline):
    import io

    from pypdf import PdfReader

    from brain_tumor import Classifier
    from brain_tumor.card import summary_line
    from brain_tumor.report import report_pdf

    classifier = Classifier.from_pretrained(tiny_baseline)
    explanation = classifier.explain(EXAMPLES[0])
    reader = PdfReader(io.BytesIO(report_pdf(explanation, summary_line(classifier.config), classifier.version)))
    text = reader.pages[0].extract_text()
    assert len(reader.pages) == 1
    assert classifier.version in text and "not a medical device" in text and "Heatmap for" in text


@pytest.mark.parametrize("args, fragment", [(["--weights", "/nonexistent/weights"], "does not exist"),
                                            pytest.param(["--layer", "layer9"], "not a layer", marks=pytest.mark.slow)])
def test_wrong_options_are_one_sentence(tiny_baseline, args, fragment):
    if "--layer" in args:
        args = ["--weights", str(tiny_baseline), *args]
    result = run_module("brain_tumor.predict", *args, EXAMPLES[0], expect=2)
    assert result.stderr.startswith("error: ") and fragment in result.stderr and "Traceback" not in result.stderr
