"""Scoring an archive on Ray Data (brain_tumor.ray_engine, `brain-tumor-predict --engine ray`): a local Ray with 2 CPUs."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import zipfile

import pandas as pd
import pytest

from tests.helpers import EXAMPLES, PYTHON, ROOT, SERIES_SLICES, make_series, run_module


def test_without_ray_the_engine_ends_in_one_sentence(tmp_path):
    code = ("import sys; sys.modules['ray'] = None; from brain_tumor.predict import main; "
            f"sys.exit(main(['--engine', 'ray', '{EXAMPLES[0]}', '--out', '{tmp_path / 'out'}']))")
    result = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2
    assert result.stderr.strip() == ('error: --engine ray needs Ray Data; install it with: pip install "brain-tumor-mri[ray]" '
                                     '(or pip install "ray[data]").')


def test_ray_needs_an_out_folder():
    result = run_module("brain_tumor.predict", "--engine", "ray", EXAMPLES[0], expect=2)
    assert "name their folder with --out DIR" in result.stderr


pytest.importorskip("ray", reason="ray is the optional [ray] extra")


def folder_of_slices(root, copies: int = 1):
    root.mkdir()
    for k in range(copies):
        for path in EXAMPLES:
            shutil.copyfile(path, root / f"{k:03d}-{path.name}")
    (root / "broken.png").write_bytes(b"not an image at all")
    return root


@pytest.mark.slow
def test_the_ray_engine_gives_predict_batch_probabilities_and_an_error_row(tiny_baseline, tmp_path):
    from brain_tumor import CLASSES, Classifier
    from brain_tumor.ray_engine import read_rows

    source = folder_of_slices(tmp_path / "slices")
    with zipfile.ZipFile(source / "series.zip", "w") as handle:  # a whole scan: a row per slice
        for name, data in make_series(SERIES_SLICES):
            handle.writestr(f"patient/{name}", data)
    out = tmp_path / "out"
    result = run_module("brain_tumor.predict", "--engine", "ray", "--weights", tiny_baseline, source, "--out", out, "--actors", "1",
                        "--batch-size", "4", "--heatmaps", "--csv", tmp_path / "rows.csv", "--cpus", "2")
    assert "10 files: 0 already scored, 15 rows added" in result.stdout
    everything = read_rows(out)
    series = everything[everything["source"] == str(source / "series.zip")]
    assert sorted(series["slice"]) == list(range(6)) and series["label"].notna().all()
    rows = everything[everything["slice"] == -1].set_index("file")
    assert len(rows) == 9 and "not an image in a supported format" in rows.loc[str(source / "broken.png"), "error"]
    classifier = Classifier.from_pretrained(tiny_baseline)
    paths = sorted(p for p in source.iterdir() if p.suffix == ".jpg")
    for path, prediction in zip(paths, classifier.predict_batch(paths)):
        row = rows.loc[str(path)]
        assert row["label"] == prediction.label and row["weights_version"] == classifier.version and pd.isna(row["error"])
        for c in CLASSES:
            assert abs(row[c] - prediction.probabilities[c]) < 1e-5
        assert os.path.isfile(row["heatmap"])
    again = run_module("brain_tumor.predict", "--engine", "ray", "--weights", tiny_baseline, source, "--out", out)
    assert "10 files: 10 already scored, 0 rows added; 15 rows" in again.stdout
    assert (tmp_path / "rows.csv").read_text().count("\n") == 16


@pytest.mark.slow
def test_a_run_killed_halfway_and_restarted_scores_every_file_exactly_once(tiny_baseline, tmp_path):
    from brain_tumor.ray_engine import read_rows

    source = folder_of_slices(tmp_path / "slices", copies=40)  # 321 files
    out = tmp_path / "out"
    command = [PYTHON, "-m", "brain_tumor.predict", "--engine", "ray", "--weights", str(tiny_baseline), str(source), "--out", str(out),
               "--actors", "1", "--batch-size", "8", "--cpus", "2"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 600
    while not list(out.glob("rows-*.parquet")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    partial = len(read_rows(out)) if out.exists() else 0
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = read_rows(out)
    assert len(rows) == 321 and rows["source"].is_unique and rows["file"].is_unique
    assert 0 < partial < 321, partial  # the first run was stopped with some, not all, of the work written
    assert rows["error"].notna().sum() == 1
