"""Whole scans: NIfTI volumes and DICOM series read into slices (brain_tumor.volumes), turned into items by the one
upload reader (brain_tumor.uploads), answered by brain_tumor.scan, and through the command line."""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from brain_tumor import UserError
from brain_tumor.scan import KEY_AREA_SHARE, UNCHECKED, ScanRule, classify_scan, key_slice
from brain_tumor.uploads import Item, Scan, gather, scans_of
from brain_tumor.volumes import read_nifti
from tests.helpers import (EXAMPLES, SERIES_SLICES, bad_scans, make_enhanced, make_series, mni_template, nifti_bytes,
                           non_image_dicom, one_sentence, run_module)


@pytest.fixture(scope="module")
def tiny(tiny_baseline):
    from brain_tumor import Classifier

    return Classifier.from_pretrained(tiny_baseline)


def only_scan(files, **kwargs):
    parts = gather(files, scans=True, **kwargs)
    assert len(parts) == 1 and isinstance(parts[0], Scan), parts
    assert parts[0].error is None, parts[0].error
    return parts[0].volume


def test_the_mni_template_is_read_in_each_plane_upright_and_windowed():
    data = mni_template().read_bytes()
    axial, coronal, sagittal = (read_nifti(data, "mni.nii.gz", plane) for plane in ("axial", "coronal", "sagittal"))
    assert (len(axial), len(coronal), len(sagittal)) == (189, 233, 197)
    assert axial.slices[0].shape == (233, 197) and coronal.slices[0].shape == (189, 197) and sagittal.slices[0].shape == (189, 233)
    assert 20 < sum(axial.outside_head) < 80  # the slices above the scalp and below the skull base
    middle = axial.slices[95]
    assert middle.dtype == np.uint8 and middle.max() == 255 and (middle > 25).mean() > 0.3


@pytest.mark.parametrize("plane, where", [("axial", (0, 0)), ("coronal", (0, 0)), ("sagittal", (0, 0))])
def test_cuts_are_shown_as_radiologists_view_them(plane, where):
    """A bright block at the head's right, anterior, superior corner: top left of an axial cut (anterior up, the
    patient's right on the viewer's left), top left of a coronal one (superior up), top left of a sagittal one
    (superior up, anterior on the left)."""
    head = np.full((20, 20, 20), 50, dtype=np.uint8)
    head[15:, 15:, 15:] = 250  # high x, y, z: right, anterior, superior
    volume = read_nifti(nifti_bytes(head), "corner.nii.gz", plane)
    cut = volume.slices[17]
    rows, cols = np.nonzero(cut == 255)
    assert (rows.max() < 10, cols.max() < 10) == (True, True), (plane, rows, cols)


def test_a_reoriented_volume_reads_the_same_as_the_canonical_one():
    import gzip

    import nibabel as nib

    canonical = nib.load(mni_template())
    array = np.asarray(canonical.dataobj)[::-1, :, :].copy()  # stored left to right: an LAS file
    flipped = nib.Nifti1Image(array, canonical.affine @ np.array([[-1, 0, 0, array.shape[0] - 1], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]))
    data = gzip.compress(flipped.header.binaryblock + b"\0" * 4 + array.tobytes(order="F"), compresslevel=1)
    a, b = read_nifti(mni_template().read_bytes(), "ras"), read_nifti(data, "las")
    assert all(np.array_equal(x, y) for x, y in zip(a.slices, b.slices))
    assert any("Reoriented from LAS to RAS" in n for n in b.notes) and not a.notes


def test_a_4d_file_gives_its_first_volume_and_says_so():
    head = np.zeros((32, 32, 8, 3), dtype=np.uint8)
    head[6:26, 6:26] = 120
    volume = only_scan([("bold.nii.gz", nifti_bytes(head))])
    assert len(volume) == 8 and "first volume" in volume.notes[0]


def test_anisotropic_voxels_are_shown_square():
    head = np.zeros((40, 40, 10), dtype=np.uint8)
    head[5:35, 5:35, :] = 100
    volume = only_scan([("thick.nii", nifti_bytes(head, zooms=(1.0, 1.0, 4.0), gz=False))], plane="coronal")
    assert volume.slices[20].shape == (40, 40)  # 10 slices of 4 mm: 40 mm tall, like its 40 mm width


def test_a_series_is_ordered_by_position_whatever_the_file_order():
    files = make_series(SERIES_SLICES)
    volume = only_scan(files)
    reference = only_scan(sorted(files))
    assert [f for f, _ in files] != sorted(f for f, _ in files)  # the files do come shuffled
    assert all(np.array_equal(a, b) for a, b in zip(volume.slices, reference.slices)) and len(volume) == 6 and not volume.notes
    enhanced = only_scan([("enhanced.dcm", make_enhanced(SERIES_SLICES))])
    assert all(np.array_equal(a, b) for a, b in zip(volume.slices, enhanced.slices))


def test_gaps_duplicates_and_missing_positions_are_scored_and_said():
    gappy = only_scan(make_series(SERIES_SLICES, positions=[0, 5, 10, 25, 30, 35]))
    assert len(gappy) == 6 and "About 2 slices are missing" in gappy.notes[0]
    twice = only_scan(make_series(SERIES_SLICES, positions=[0, 5, 5, 10, 15, 20]))
    assert len(twice) == 5 and "1 slices repeat a position" in twice.notes[0]
    unplaced = only_scan(make_series(SERIES_SLICES, with_positions=False, numbers=[6, 5, 4, 3, 2, 1]))
    assert "ordered by InstanceNumber" in unplaced.notes[0]
    assert np.array_equal(unplaced.slices[0], only_scan(make_series(SERIES_SLICES)).slices[-1])


def test_several_series_give_one_scan_each_and_other_files_stay_items():
    files = make_series(SERIES_SLICES[:3]) + make_series(SERIES_SLICES[3:]) + [("report.dcm", non_image_dicom()),
                                                                                  ("slice.jpg", EXAMPLES[0].read_bytes())]
    parts = gather(files, scans=True)
    scans, items = [p for p in parts if isinstance(p, Scan)], [p for p in parts if isinstance(p, Item)]
    assert [len(s.volume) for s in scans] == [3, 3]
    assert {i.name: i.error for i in items} == {"report.dcm": "report.dcm is a structured report, not an image.", "slice.jpg": None}
    # Without scans (the Many slices tab), DICOM files are slices and a NIfTI file points to the whole-scan readers.
    flat = gather(files + [("brain.nii.gz", b"")])
    assert all(isinstance(p, Item) for p in flat) and "Whole scan tab" in flat[-1].error


@pytest.mark.parametrize("case, files, fragment", bad_scans(), ids=[case for case, _, _ in bad_scans()])
def test_every_bad_scan_gets_one_sentence(case, files, fragment):
    with pytest.raises(UserError) as caught:
        for scan in scans_of(gather(files, scans=True), files[0][0]):
            if scan.error:
                raise UserError(scan.error)
    assert fragment in str(caught.value) and one_sentence(str(caught.value)), str(caught.value)


def test_a_scan_answer_ranks_slices_names_a_key_slice_and_states_its_rule(tiny):
    volume = read_nifti(mni_template().read_bytes(), "mni.nii.gz")
    seen = []
    result = classify_scan(tiny, volume, progress=lambda done, total: seen.append((done, total)))
    answer = json.loads(json.dumps(result.to_json()))  # plain JSON all through
    scored = [r["slice"] for r in answer["per_slice"] if r["scored"]]
    assert answer["slices"] == 189 and answer["scored"] == len(scored) == 189 - answer["skipped_outside_head"]
    assert sorted(answer["ranking"]) == scored and seen[-1] == (len(scored), len(scored))
    tumour = {r["slice"]: r["tumour_probability"] for r in answer["per_slice"] if r["scored"]}
    largest = max(volume.head_area)
    run = answer["summary"]["run"]
    pool = range(run[0], run[1] + 1) if run else scored
    # in distribution and inside the head's wider part (not the neck, the skull base or the vertex), when there is one
    inner = [i for i in pool if volume.head_area[i] >= KEY_AREA_SHARE * largest]
    candidates = [i for i in inner if not answer["per_slice"][i]["out_of_distribution"]] or inner or pool
    assert tumour[answer["key_slice"]["slice"]] == max(tumour[i] for i in candidates)
    assert volume.head_area[answer["key_slice"]["slice"]] >= KEY_AREA_SHARE * largest or not inner
    assert answer["summary"]["rule"] == ScanRule().describe() and answer["warning"] == UNCHECKED
    assert answer["summary"]["label"] in ("glioma", "meningioma", "notumor", "pituitary")
    assert result.key_explanation.heatmap.shape == volume.slices[answer["key_slice"]["slice"]].shape


@pytest.mark.slow  # two commands over a volume and a series
def test_one_python_call_answers_a_file_a_folder_or_a_list_of_files(tiny, tmp_path):
    from brain_tumor import ScanResult
    from brain_tumor import classify_scan as from_the_package

    folder = tmp_path / "series"
    folder.mkdir()
    for name, data in make_series(SERIES_SLICES):
        (folder / name).write_bytes(data)
    by_folder = from_the_package(tiny, folder)
    by_files = from_the_package(tiny, sorted(folder.iterdir()))
    assert isinstance(by_folder, ScanResult) and len(by_folder.volume) == len(by_files.volume) == 6
    assert by_folder.to_json()["ranking"] == by_files.to_json()["ranking"]
    assert len(from_the_package(tiny, mni_template(), plane="sagittal").volume) == 197
    for name, data in make_series(SERIES_SLICES[:3]):
        (folder / f"other-{name}").write_bytes(data)  # a second series in the same folder
    with pytest.raises(UserError) as caught:
        from_the_package(tiny, folder)
    assert "holds 2 scans" in str(caught.value) and one_sentence(str(caught.value))


@pytest.mark.slow  # two command-line processes (20 s); test_app's classify_scan test covers the same scans quickly
def test_the_command_line_answers_a_volume_and_a_zipped_series(tiny_baseline, tmp_path):
    archive = tmp_path / "series.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for name, data in make_series(SERIES_SLICES):
            handle.writestr(f"patient/{name}", data)
    result = run_module("brain_tumor.predict", "--weights", tiny_baseline, mni_template(), archive, "--csv", tmp_path / "rows.csv",
                        "--report", tmp_path / "reports")
    assert "a NIfTI volume of 189 axial slices" in result.stdout and "a DICOM series of 6 acquired slices" in result.stdout
    assert result.stdout.count("summary: ") == 2 and UNCHECKED in result.stdout
    rows = (tmp_path / "rows.csv").read_text().splitlines()
    assert len(rows) == 1 + 189 + 6 and "outside the head; not scored" in (tmp_path / "rows.csv").read_text()
    assert len(list((tmp_path / "reports").glob("*_report.pdf"))) == 2
    gappy = tmp_path / "gappy"
    gappy.mkdir()
    for name, data in make_series(SERIES_SLICES, positions=[0, 5, 10, 25, 30, 35]):
        (gappy / name).write_bytes(data)
    noted = run_module("brain_tumor.predict", "--weights", tiny_baseline, gappy).stdout
    assert "a DICOM series of 6 acquired slices: 6 scored" in noted and "note: About 2 slices are missing" in noted
    answers = [json.loads(line) for line in run_module("brain_tumor.predict", "--weights", tiny_baseline, archive, "--json").stdout.splitlines()]
    assert len(answers) == 1 and answers[0]["kind"] == "DICOM series" and len(answers[0]["per_slice"]) == 6


@pytest.mark.slow  # a command over nine bad scans
def test_the_command_line_gives_each_bad_scan_its_sentence(tiny_baseline, tmp_path):
    paths = []
    for case, files, fragment in bad_scans():
        if case == "no DICOM in the archive":
            continue  # the command line classifies the slice it holds; a folder without scans or images is below
        folder = tmp_path / case.replace(" ", "-")
        folder.mkdir()
        for name, data in files:
            (folder / name).write_bytes(data)
        paths.append((folder / files[0][0], fragment))
    result = run_module("brain_tumor.predict", "--weights", tiny_baseline, *[p for p, _ in paths], expect=1)
    for path, fragment in paths:
        line = next((line for line in result.stderr.splitlines() if path.name in line and "error:" in line), None)
        assert line is not None and fragment in line, (path.name, result.stderr[-2000:])
    empty = tmp_path / "letters"
    empty.mkdir()
    (empty / "notes.txt").write_text("a letter, not a scan")
    result = run_module("brain_tumor.predict", "--weights", tiny_baseline, empty, expect=2)
    assert result.stderr.strip() == "error: no image files or scans found in the given folders."


def _slice(tumour: float, out: bool = False):
    from brain_tumor.classifier import Prediction

    probabilities = {"glioma": tumour, "meningioma": 0.0, "notumor": 1 - tumour, "pituitary": 0.0}
    return Prediction("glioma" if tumour >= 0.5 else "notumor", probabilities, ("dark",) if out else ())


def test_the_scan_rule_counts_neither_edge_nor_out_of_distribution_slices():
    rule = ScanRule(level=0.6, min_run=3, edge_share=0.4)
    areas = [0.05, 0.1, 0.5, 0.6, 0.6, 0.6, 0.5, 0.1]
    # three tumour-like slices at the skull base (small head area): no tumour
    edge = [_slice(0.9), _slice(0.9), _slice(0.9), _slice(0.1), _slice(0.1), _slice(0.1), _slice(0.1), _slice(0.1)]
    assert rule.summarise(edge, [0.1, 0.1, 0.1, 0.6, 0.6, 0.6, 0.5, 0.1]) == ("notumor", None)
    # a run broken by an out-of-distribution slice: no tumour; the same run in distribution names the tumour
    broken = [None, _slice(0.1), _slice(0.9), _slice(0.9, out=True), _slice(0.9), _slice(0.9), _slice(0.1), None]
    assert rule.summarise(broken, areas) == ("notumor", None)
    whole = [None, _slice(0.1), _slice(0.9), _slice(0.9), _slice(0.9), _slice(0.9), _slice(0.1), None]
    assert rule.summarise(whole, areas) == ("glioma", (2, 5))
    assert ScanRule(level=0.95).summarise(whole, areas) == ("notumor", None)


def test_a_slice_repeated_by_resampling_is_one_slice_of_evidence():
    rule = ScanRule(level=0.6, min_run=2)
    areas = [0.6] * 7
    # one acquired slice, tumour-like, copied twice by a resampling to a finer grid: not a run of two
    one = [_slice(0.1), _slice(0.9), _slice(0.9), _slice(0.9), _slice(0.1), _slice(0.1), _slice(0.1)]
    repeats = [False, False, True, True, False, True, True]
    assert rule.summarise(one, areas, repeats) == ("notumor", None)
    assert rule.summarise(one, areas) == ("glioma", (1, 3))  # the same slices, each acquired: a run
    # the run with more acquired slices wins over a longer run of copies
    two = [_slice(0.9), _slice(0.9), _slice(0.9), _slice(0.1), _slice(0.9), _slice(0.9), _slice(0.1)]
    assert rule.summarise(two, areas, [False, True, True, False, False, False, False]) == ("glioma", (4, 5))


def test_a_resampled_volume_scores_each_acquired_slice_once_and_says_so(tiny, monkeypatch):
    from brain_tumor.volumes import volume_of_slices

    acquired = [v.slices[i] for v in [read_nifti(mni_template().read_bytes(), "mni.nii.gz")] for i in range(60, 140, 10)]
    volume = volume_of_slices("thick.nii.gz", "NIfTI volume", "axial", [s for s in acquired for _ in range(3)])
    assert sum(volume.repeats) == 2 * len(acquired) and any("16 of its 24 slices inside the head repeat" in n for n in volume.notes)
    pictures = []
    scoring = tiny.predict_batch
    monkeypatch.setattr(tiny, "predict_batch", lambda batch: pictures.extend(batch) or scoring(batch))
    monkeypatch.setattr(tiny.config, "scan_rule", {"level": 0.0, "min_run": 8})  # every slice counts: one run of them all
    result = classify_scan(tiny, volume)
    assert len(pictures) == len(acquired) and all(p is not None for p in result.predictions)
    assert all(result.predictions[i] is result.predictions[i - 1] for i in range(len(volume)) if volume.repeats[i])
    assert result.run == (0, 23) and "(24 slices, 8 distinct)" in result.summary
    monkeypatch.setattr(tiny.config, "scan_rule", {"level": 0.0, "min_run": 9})
    assert classify_scan(tiny, volume).label == "notumor"  # 24 slices, but only 8 acquired


def test_the_scan_rule_travels_with_the_weights_and_says_what_it_scored(tiny):
    import copy

    config = copy.deepcopy(tiny.config)
    config.scan_rule = {"level": 0.8, "min_run": 4, "edge_share": 0.3, "checked": "Healthy volumes: 4 of 4 called healthy.",
                        "chosen_by": "a test"}
    rule = ScanRule.of(config)
    assert (rule.level, rule.min_run, rule.edge_share) == (0.8, 4, 0.3)
    assert "Healthy volumes: 4 of 4" in rule.warning and "not a diagnosis" in rule.warning and rule.warning != UNCHECKED
    assert "at least 4 neighbouring" in rule.describe() and "80%" in rule.describe() and "30% of the scan's largest" in rule.describe()
    assert ScanRule.of(tiny.config) == ScanRule()


def test_the_key_slice_is_a_slice_of_the_brain_and_never_an_edge_or_out_of_distribution_one_when_another_will_do():
    rule = ScanRule(level=0.6, min_run=3, edge_share=0.3)
    areas = [0.3, 0.4, 0.5, 0.9, 1.0, 0.9, 0.95, 0.4]
    # the run starts at the skull base, where the tumour probability is highest: the key slice is still the brain's
    run = [_slice(0.99), _slice(0.98), _slice(0.97), _slice(0.7), _slice(0.9, out=True), _slice(0.8), _slice(0.1), _slice(0.1)]
    assert key_slice(run, areas, rule, (0, 5)) == 5
    # no run: the most tumour-like in-distribution slice of the head's wider part, not the vertex slice above it
    healthy = [None, _slice(0.1), _slice(0.2), _slice(0.3), _slice(0.2), _slice(0.05), _slice(0.25, out=True), _slice(0.6)]
    assert key_slice(healthy, areas, rule, None) == 3
    # only edge slices in the run: one of them, rather than a slice outside it
    assert key_slice(run, areas, rule, (0, 2)) == 0
