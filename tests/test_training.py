"""training: 1-epoch fits, resume, DDP on gloo, evaluate, audit, dataset layouts, push (faked Hub)."""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import torch

from brain_tumor import CLASSES, Classifier
from tests.conftest import PYTHON, ROOT, make_kaggle_dataset, synthetic_slice
from training import twins
from training.augment import AugmentConfig, augment
from training.datasets import DatasetError, discover

FAST = ["--image-size", "32", "--batch-size", "8", "--workers", "1", "--device", "cpu"]


def run(module: str, *args, env=None, timeout=240) -> subprocess.CompletedProcess:
    result = subprocess.run([PYTHON, "-m", module, *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                            timeout=timeout, env={**os.environ, **(env or {})})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.mark.parametrize("model", ["baseline", "resnet50"])
def test_one_epoch_fit_exports_a_loadable_weights_folder(model, kaggle_dataset, tmp_path):
    out = tmp_path / "run"
    run("training.fit", "--model", model, "--init", "scratch", "--data", kaggle_dataset, "--out", out, "--epochs", "1",
        "--cache-dir", tmp_path / "cache", *FAST)
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert len(rows) == 1 and float(rows[0]["img_per_s"]) > 0
    classifier = Classifier.from_pretrained(out / "weights")
    config = classifier.config
    assert config.architecture == model and config.image_size == 32 and config.temperature > 0
    assert {"validation", "test", "test_clean", "leaked"} <= set(config.metrics)
    assert config.metrics["leaked"] == 2  # the planted twins
    assert config.provenance["recipe"]["epochs"] == 1
    assert config.provenance["split_notes"]["val_twins_in_train"] == 0
    assert set(config.ood["bounds"]) == {"saturation", "contrast", "border", "noise", "energy"}
    assert any((out / "tensorboard").iterdir())
    assert "accuracy" in (out / "weights" / "README.md").read_text()


def test_resume_continues_the_run(kaggle_dataset, tmp_path):
    out = tmp_path / "run"
    run("training.fit", "--model", "baseline", "--data", kaggle_dataset, "--out", out, "--epochs", "1", "--no-test",
        "--cache-dir", tmp_path / "cache", *FAST)
    first = torch.load(out / "checkpoint.pt", weights_only=True)
    result = run("training.fit", "--resume", out, "--epochs", "2")
    assert "resumed at epoch 2" in result.stdout + result.stderr
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    second = torch.load(out / "checkpoint.pt", weights_only=True)
    assert second["epoch"] == 1 and len(second["history"]) == 2
    # Training went on from the saved weights rather than starting over.
    key = "features.0.weight"
    assert not torch.equal(first["model"][key], second["model"][key])


def test_two_process_ddp_on_gloo(kaggle_dataset, tmp_path):
    out = tmp_path / "ddp"
    result = subprocess.run(
        [PYTHON, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "training.fit",
         "--model", "baseline", "--data", str(kaggle_dataset), "--out", str(out), "--epochs", "1", "--no-test",
         "--cache-dir", str(tmp_path / "cache"), *FAST],
        capture_output=True, text=True, cwd=ROOT, timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(world 2)" in result.stdout + result.stderr
    assert Classifier.from_pretrained(out / "weights").config.provenance["hardware"].startswith("2 ×")


def test_fit_explains_missing_data_in_one_sentence(tmp_path):
    result = subprocess.run([PYTHON, "-m", "training.fit", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 2 and "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_fit_without_imagenet_download_names_scratch(kaggle_dataset, tmp_path):
    # torchvision downloads through torch.hub; an unroutable proxy stands in for "no network".
    result = subprocess.run([PYTHON, "-m", "training.fit", "--model", "resnet50", "--data", str(kaggle_dataset), "--out", str(tmp_path / "o"),
                             "--epochs", "1", "--cache-dir", str(tmp_path / "cache"), *FAST],
                            capture_output=True, text=True, cwd=ROOT, timeout=120,
                            env={**os.environ, "TORCH_HOME": str(tmp_path / "torch"), "HTTPS_PROXY": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"})
    assert result.returncode == 2, result.stderr[-2000:]
    assert "--init scratch" in result.stderr and "Traceback" not in result.stderr


def test_evaluate_writes_every_metric_and_plot(kaggle_dataset, tiny_baseline, tmp_path):
    out = tmp_path / "report"
    result = run("training.evaluate", "--weights", tiny_baseline, "--data", kaggle_dataset, "--train-data", kaggle_dataset / "Training",
                 "--out", out, "--cache-dir", "")
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("n", "accuracy", "macro_f1", "per_class", "confusion_matrix", "roc_auc", "ece"):
        assert key in metrics and key in metrics["clean"]
    assert metrics["n"] == 18 and metrics["leaked"] == 2 and metrics["clean"]["n"] == 16
    assert set(metrics["per_class"]) == set(CLASSES)
    assert np.array(metrics["confusion_matrix"]).sum() == 18
    for png in ("confusion_matrix", "reliability", "roc", "predictions", "class_distribution"):
        assert (out / f"{png}.png").stat().st_size > 5000
    assert "clean" in (out / "summary.md").read_text() and "clean:" in result.stdout


def test_audit_finds_planted_duplicates(kaggle_dataset, tmp_path):
    out = tmp_path / "twins.csv"
    result = run("training.audit", "--data", kaggle_dataset, "--out", out, "--cache-dir", "")
    assert "test vs train: 2 of 18 images" in result.stdout
    rows = list(csv.DictReader(open(out)))
    leaked = [r for r in rows if r["split_a"] == "test" and r["split_b"] == "train"]
    assert {os.path.basename(r["path_a"]) for r in leaked} == {"Te-leak-0.png", "Te-leak-1.png"}
    within = [r for r in rows if r["split_a"] == r["split_b"] == "train"]
    assert any("Tr-0-dup.png" in r["path_a"] + r["path_b"] for r in within)


def test_twin_groups_never_straddle_the_split():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 25)
    group_ids = np.arange(100)
    group_ids[10:20] = 10  # ten images that are all twins of each other
    train, val = twins.grouped_split(labels, group_ids, 0.2, seed=3)
    assert len(set(train) & set(val)) == 0 and len(train) + len(val) == 100
    assert set(range(10, 20)) <= set(train) or set(range(10, 20)) <= set(val)
    assert 15 <= len(val) <= 20
    del rng


def test_roboflow_layout_with_classes_csv(tmp_path):
    for split, n in (("train", 3), ("valid", 2), ("test", 2)):
        folder = tmp_path / split
        folder.mkdir()
        with open(folder / "_classes.csv", "w") as handle:
            handle.write("filename, glioma_tumor, meningioma_tumor, no_tumor, pituitary_tumor\n")
            for c in range(4):
                for i in range(n):
                    name = f"{split}-{c}-{i}.jpg"
                    synthetic_slice(c, i).save(folder / name)
                    hot = ["0"] * 4
                    hot[c] = "1"
                    handle.write(f"{name}, {', '.join(hot)}\n")
    splits = discover(tmp_path)
    assert set(splits) == {"train", "val", "test"}
    assert splits["train"].counts() == dict.fromkeys(CLASSES, 3)
    assert splits["val"].counts() == dict.fromkeys(CLASSES, 2)


def test_single_folder_of_class_folders(tmp_path):
    make_kaggle_dataset(tmp_path / "k", train_per_class=6, test_per_class=1, leaked=0)
    splits = discover(tmp_path / "k" / "Training")
    assert list(splits) == ["train"] and len(splits["train"]) == 25  # 24 + the planted in-train twin


def test_unknown_class_folder_is_one_sentence(tmp_path):
    (tmp_path / "astrocytoma").mkdir()
    synthetic_slice(0, 0).save(tmp_path / "astrocytoma" / "a.png")
    with pytest.raises(DatasetError, match="not a known class"):
        discover(tmp_path)


def test_kaggle_download_offline_says_where_to_put_the_data(monkeypatch):
    import sys
    import types

    fake = types.ModuleType("kagglehub")

    def dataset_download(handle):
        raise ConnectionError("no network")

    fake.dataset_download = dataset_download
    monkeypatch.setitem(sys.modules, "kagglehub", fake)
    with pytest.raises(DatasetError, match="download it by hand and pass its folder"):
        discover("kaggle")


def test_augment_keeps_shape_range_and_varies():
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    generator = torch.Generator().manual_seed(0)
    out = augment(images, AugmentConfig(), generator)
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 255
    assert not torch.allclose(out, images.float())
    torch.testing.assert_close(augment(images, AugmentConfig.none()), images.float(), atol=1e-3, rtol=0)


def test_push_uploads_the_verified_folder(monkeypatch, tiny_baseline, tmp_path):
    import huggingface_hub

    from training import push

    calls = {}

    class FakeApi:
        def create_repo(self, repo_id, **kwargs):
            calls["create"] = (repo_id, kwargs)

        def upload_folder(self, **kwargs):
            calls["upload"] = kwargs
            return types.SimpleNamespace(commit_url="https://huggingface.co/someone/m/commit/1")

    import types

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    assert push.main(["--weights", str(tiny_baseline), "--repo-id", "someone/m", "--private"]) == 0
    assert calls["create"] == ("someone/m", {"repo_type": "model", "private": True, "exist_ok": True})
    assert calls["upload"]["folder_path"] == str(tiny_baseline) and "*.safetensors" in calls["upload"]["allow_patterns"]

    tampered = tmp_path / "t"
    shutil.copytree(tiny_baseline, tampered)
    shard = next(tampered.glob("*.safetensors"))
    shard.write_bytes(shard.read_bytes()[:-1] + b"\0")
    calls.clear()
    assert push.main(["--weights", str(tampered), "--repo-id", "someone/m"]) == 2
    assert "upload" not in calls


def test_seeded_runs_are_reproducible_on_cpu(kaggle_dataset, tmp_path):
    states = []
    for name in ("a", "b"):
        run("training.fit", "--model", "baseline", "--data", kaggle_dataset, "--out", tmp_path / name, "--epochs", "1", "--no-test",
            "--seed", "7", "--cache-dir", tmp_path / "cache", *FAST)
        states.append(torch.load(tmp_path / name / "checkpoint.pt", weights_only=True)["model"])
    for key in states[0]:
        torch.testing.assert_close(states[0][key], states[1][key], rtol=0, atol=0)


def test_evaluate_can_record_its_figures_in_the_weights_folder(kaggle_dataset, tiny_baseline, tmp_path):
    folder = tmp_path / "w"
    shutil.copytree(tiny_baseline, folder)
    run("training.evaluate", "--weights", folder, "--data", kaggle_dataset, "--train-data", kaggle_dataset / "Training",
        "--out", tmp_path / "report", "--cache-dir", "", "--write-config")
    config = Classifier.from_pretrained(folder).config  # still loads: shards and their sha256 untouched
    assert config.metrics["test"]["n"] == 18 and config.metrics["test_clean"]["n"] == 16 and config.metrics["leaked"] == 2
    assert "Testing, clean subset | 16 |" in (folder / "README.md").read_text()
