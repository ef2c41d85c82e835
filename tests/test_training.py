"""training: fits, resume, DDP, the one validation split, evaluate, audit, the box-supervised gate on frozen
features, dataset layouts, push (faked Hub), and one-sentence errors from every command."""
from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import subprocess
import types

import numpy as np
import pytest
import torch

from brain_tumor import CLASSES, Classifier
from brain_tumor.config import ModelConfig
from brain_tumor.errors import UsageError
from brain_tumor.models import create_model, model_config
from brain_tumor.weights import save_weights
from tests.helpers import PYTHON, ROOT, make_kaggle_dataset, one_sentence, run_module, synthetic_slice
from training import twins
from training.augment import AugmentConfig, augment
from training.choose import RunFigures, choose, read_run, table
from training.data import DatasetError, SplitRecipe, discover, split_recipe_of
from training.fit import build_optimizer, check_flags, epoch_batches, get_args_parser, resolve_args

FAST = ["--image-size", "32", "--batch-size", "8", "--workers", "1", "--device", "cpu"]


@pytest.mark.parametrize("model", ["baseline", pytest.param("resnet50", marks=pytest.mark.slow)])
def test_one_epoch_fit_exports_a_loadable_weights_folder(model, kaggle_dataset, tmp_path):
    out = tmp_path / "run"
    run_module("training.fit", "--model", model, "--init", "scratch", "--data", kaggle_dataset, "--out", out, "--epochs", "1",
               "--cache-dir", tmp_path / "cache", *FAST)
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert len(rows) == 1 and float(rows[0]["img_per_s"]) > 0
    config = Classifier.from_pretrained(out / "weights").config
    assert config.architecture == model and config.image_size == 32 and config.temperature > 0
    assert {"validation", "test", "test_clean", "leaked"} <= set(config.metrics)
    assert config.metrics["leaked"] == 2  # the planted twins
    assert config.provenance["recipe"]["epochs"] == 1
    assert config.provenance["split_notes"]["val_twins_in_train"] == 0
    assert set(config.ood["bounds"]) == {"saturation", "contrast", "border", "noise", "energy"}
    assert any((out / "tensorboard").iterdir())
    assert "accuracy" in (out / "weights" / "README.md").read_text()


def test_bf16_on_the_cpu_trains_channels_last_and_exports_the_default_layout(kaggle_dataset, tmp_path):
    out = tmp_path / "run"
    run_module("training.fit", "--model", "baseline", "--init", "scratch", "--data", kaggle_dataset, "--out", out, "--epochs", "1",
               "--amp", "bf16", "--no-test", "--cache-dir", tmp_path / "cache", *FAST)
    trained = torch.load(out / "checkpoint.pt", weights_only=False)["model"]
    kernels = [t for t in trained.values() if t.dim() == 4 and t.shape[-1] > 1]  # a 1×1 kernel is both layouts
    assert kernels and all(t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous() for t in kernels)
    classifier = Classifier.from_pretrained(out / "weights")
    assert all(t.is_contiguous() for t in classifier.model.state_dict().values())
    assert classifier.config.provenance["recipe"]["amp"] == "bf16"


def test_a_batch_takes_the_runs_layout_channels_last_under_bf16_on_the_cpu():
    from training.frozen import TrainItems

    items = TrainItems(torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8), np.zeros(4, dtype=np.int64))
    config, cpu = model_config("baseline"), torch.device("cpu")
    draw = lambda use_amp: items.batch(torch.arange(4), config, AugmentConfig(), torch.Generator().manual_seed(0), cpu, use_amp)[0]  # noqa: E731
    bf16, fp32 = draw(True), draw(False)
    assert bf16.is_contiguous(memory_format=torch.channels_last) and not bf16.is_contiguous()
    assert fp32.is_contiguous() and torch.equal(bf16, fp32)  # the same numbers, only laid out differently


def test_fit_and_calibrate_ood_see_the_same_validation_files(kaggle_dataset, tmp_path):
    # A capped run: the validation split depends on --max-per-class, --seed and the twin threshold.
    out = tmp_path / "run"
    run_module("training.fit", "--model", "baseline", "--data", kaggle_dataset, "--out", out, "--epochs", "1", "--max-per-class", "6",
               "--val-fraction", "0.34", "--seed", "3", "--no-test", "--cache-dir", tmp_path / "cache", *FAST)
    fitted = (out / "validation_files.txt").read_text().split()
    from training.calibrate_ood import calibrate, get_args_parser

    result = calibrate(get_args_parser().parse_args(["--weights", str(out / "weights"), "--cache-dir", str(tmp_path / "cache")]))
    assert len(fitted) == 8 and result["validation_files"] == fitted
    assert Classifier.from_pretrained(out / "weights").config.ood["fitted_on"].endswith("(n=8)")


def test_reset_bn_judges_and_keeps_an_epoch_with_clean_statistics_while_training_keeps_its_own(kaggle_dataset, tmp_path):
    def run(name, *extra):
        out = tmp_path / name
        run_module("training.fit", "--model", "baseline", "--data", kaggle_dataset, "--out", out, "--epochs", "1", "--max-per-class",
                   "6", "--val-fraction", "0.34", "--seed", "3", "--no-test", "--cache-dir", tmp_path / "cache", *extra, *FAST)
        return (torch.load(out / "checkpoint.pt", weights_only=False)["model"], Classifier.from_pretrained(out / "weights"),
                list(csv.DictReader(open(out / "metrics.csv"))))
    trained, _, _ = run("plain")
    reset_trained, reset, rows = run("reset", "--reset-bn", "16")
    statistics = [k for k in trained if k.endswith(("running_mean", "running_var"))]
    assert statistics and all(torch.equal(reset_trained[k], trained[k]) for k in trained)  # training went on with its own
    exported = reset.model.state_dict()
    assert all(not torch.equal(exported[k].float(), trained[k].float()) for k in statistics)  # the kept epoch has the new ones
    assert reset.config.metrics["validation"]["accuracy"] == pytest.approx(float(rows[0]["val_acc"]))  # and was judged with them
    for frozen in (["--freeze-through", "features"], ["--finetune", "head"]):
        failed = run_module("training.fit", "--model", "baseline", "--data", kaggle_dataset, "--out", tmp_path / "no",
                            "--reset-bn", "8", *frozen, expect=2)
        assert "a frozen trunk keeps the statistics" in failed.stderr and "Traceback" not in failed.stderr


@pytest.mark.slow  # a run, then an error path
def test_calibrate_ood_without_validation_is_one_sentence(kaggle_dataset, tmp_path):
    out = tmp_path / "run"
    run_module("training.fit", "--model", "baseline", "--data", kaggle_dataset, "--out", out, "--epochs", "1", "--val-fraction", "0",
               "--no-test", "--cache-dir", "", *FAST)
    result = run_module("training.calibrate_ood", "--weights", out / "weights", "--cache-dir", "", expect=2)
    assert "held out no validation images" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow  # a run, then its resumption
def test_resume_continues_the_run(kaggle_dataset, tmp_path):
    out = tmp_path / "run"
    run_module("training.fit", "--model", "baseline", "--data", kaggle_dataset, "--out", out, "--epochs", "1", "--no-test",
               "--cache-dir", tmp_path / "cache", *FAST)
    first = torch.load(out / "checkpoint.pt", weights_only=True)
    result = run_module("training.fit", "--resume", out, "--epochs", "2")
    assert "resumed at epoch 2" in result.stdout + result.stderr
    assert [r["epoch"] for r in csv.DictReader(open(out / "metrics.csv"))] == ["1", "2"]
    second = torch.load(out / "checkpoint.pt", weights_only=True)
    assert second["epoch"] == 1 and len(second["history"]) == 2
    key = "features.0.weight"  # training went on from the saved weights rather than starting over
    assert not torch.equal(first["model"][key], second["model"][key])


@pytest.mark.slow
def test_two_process_ddp_on_gloo(kaggle_dataset, tmp_path):
    out = tmp_path / "ddp"
    result = subprocess.run(
        [PYTHON, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "training.fit",
         "--model", "baseline", "--data", str(kaggle_dataset), "--out", str(out), "--epochs", "1", "--no-test",
         "--cache-dir", str(tmp_path / "cache"), *FAST],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(world 2)" in result.stdout + result.stderr
    assert Classifier.from_pretrained(out / "weights").config.provenance["hardware"].startswith("2 ×")


@pytest.mark.slow  # two training runs
def test_seeded_runs_are_reproducible_on_cpu(kaggle_dataset, tmp_path):
    states = []
    for name in ("a", "b"):
        run_module("training.fit", "--model", "baseline", "--data", kaggle_dataset, "--out", tmp_path / name, "--epochs", "1", "--no-test",
                   "--seed", "7", "--cache-dir", tmp_path / "cache", *FAST)
        states.append(torch.load(tmp_path / name / "checkpoint.pt", weights_only=True)["model"])
    for key in states[0]:
        torch.testing.assert_close(states[0][key], states[1][key], rtol=0, atol=0)


COMMANDS = [
    ("training.fit", ["--out", "{tmp}/o"]),
    ("training.evaluate", []),
    ("training.audit", ["--out", "{tmp}/t.csv"]),
    ("training.calibrate_ood", ["--weights", "{weights}"]),
    ("training.make_examples", ["--out", "{tmp}/ex"]),
    ("training.fit", ["--model", "resnet50_gated", "--init", "{resnet}", "--boxes", "{tmp}/b", "--freeze-through", "layer4", "--out", "{tmp}/g"]),
    ("training.diagnose", ["--weights", "{resnet}", "--out", "{tmp}/d"]),
]


@pytest.mark.parametrize("module, extra", COMMANDS, ids=[f"{m}-{i}" for i, (m, _) in enumerate(COMMANDS)])
def test_every_command_ends_a_wrong_data_folder_with_one_sentence(module, extra, tmp_path, tiny_baseline, tiny_resnet):
    args = [a.format(tmp=tmp_path, weights=tiny_baseline, resnet=tiny_resnet) for a in extra]
    result = run_module(module, "--data", tmp_path / "nowhere", *args, "--cache-dir", "", expect=2)
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("error: ") and "does not exist" in message and one_sentence(message[len("error: "):])
    assert "Traceback" not in result.stderr


@pytest.mark.slow  # two commands' error paths
def test_evaluate_cam_and_fit_name_a_missing_box_folder(tiny_resnet, kaggle_dataset, tmp_path):
    for module, args in (("training.evaluate_cam", ["--weights", tiny_resnet, "--out", tmp_path / "c"]),
                         ("training.fit", ["--model", "resnet50_gated", "--init", tiny_resnet, "--data", kaggle_dataset,
                                           "--out", tmp_path / "f", "--image-size", "64", *FAST[2:]])):
        result = run_module(module, *args, "--boxes", tmp_path / "nowhere", "--cache-dir", "", expect=2)
        assert "has no boxes.csv" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow  # an error path the every-model test also walks
def test_fit_without_imagenet_download_names_scratch(kaggle_dataset, tmp_path):
    # torchvision downloads through torch.hub; an unroutable proxy stands in for "no network".
    result = run_module("training.fit", "--model", "resnet50", "--data", kaggle_dataset, "--out", tmp_path / "o", "--epochs", "1",
                        "--cache-dir", tmp_path / "cache", *FAST, expect=2,
                        env={"TORCH_HOME": str(tmp_path / "torch"), "HTTPS_PROXY": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"})
    assert "--init scratch" in result.stderr and "Traceback" not in result.stderr


def test_diagnose_measures_accuracy_without_each_cue(tiny_resnet, kaggle_dataset, boxes_folder, tmp_path):
    run_module("training.diagnose", "--weights", tiny_resnet, "--data", kaggle_dataset, "--boxes", boxes_folder, "--out", tmp_path / "d",
               "--cache-dir", "")
    result = json.loads((tmp_path / "d" / "diagnosis.json").read_text())
    assert set(result["clean_test"]) == {"as_is", "outside_head_blacked", "cropped_to_head"}
    assert set(result["boxed"]) == {"as_is", "tumour_box_blanked", "tumour_box_blurred", "tumour_box_inpainted", "per_class"}
    assert result["n_boxed"] == 9  # the evaluation part only
    assert sorted(result["boxed"]["per_class"]) == ["glioma", "meningioma", "pituitary"]
    assert sum(v["n"] for v in result["boxed"]["per_class"].values()) == 9
    assert all(0 <= v <= 1 for k, v in [*result["clean_test"].items(), *result["boxed"].items()] if k != "per_class")
    assert sum(f["n"] for f in result["per_file_family"].values()) == result["n_clean_test"] > 0
    assert all(0 <= share <= 1 for share in result["heatmap_mass_outside_head"].values())
    assert "tumour box blanked" in (tmp_path / "d" / "diagnosis.md").read_text()


def test_the_diagnosis_takes_away_what_it_says():
    from training.diagnose import box_blanked, cropped_to_head, masked_outside_head

    image = np.zeros((1, 64, 64, 3), np.uint8)
    image[0, 16:48, 8:40] = 90  # the head: off centre, with a black frame around it
    image[0, 20:28, 12:20] = 250  # the "tumour"
    image[0, 2, 60] = 30  # a faint mark outside the head
    blanked = box_blanked(image, [(12, 20, 20, 28)])
    assert (blanked[0, 20:28, 12:20] == 90).all() and (blanked[0, 30:40] == image[0, 30:40]).all()
    for fill in ("blur", "inpaint"):  # the bright lesion is gone, the head far from the box is untouched
        filled = box_blanked(image, [(12, 20, 20, 28)], fill)
        assert filled[0, 20:28, 12:20].max() < 200 and (filled[0, 36:44, 24:36] == 90).all()
    assert masked_outside_head(image)[0, 2, 60].sum() == 0 and (masked_outside_head(image)[0, 30:40, 10:38] == 90).all()
    cropped = cropped_to_head(image)[0]
    assert cropped.shape == (64, 64, 3) and (cropped[:, 32] > 0).all()  # the head now fills the frame, top to bottom


def test_evaluate_writes_every_metric_and_plot(kaggle_dataset, tiny_baseline, tmp_path):
    out = tmp_path / "report"
    result = run_module("training.evaluate", "--weights", tiny_baseline, "--data", kaggle_dataset, "--train-data", kaggle_dataset / "Training",
                        "--out", out, "--cache-dir", "")
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("n", "accuracy", "macro_f1", "per_class", "confusion_matrix", "roc_auc", "ece"):
        assert key in metrics and key in metrics["clean"]
    assert metrics["n"] == 18 and metrics["leaked"] == 2 and metrics["clean"]["n"] == 16
    assert np.array(metrics["confusion_matrix"]).sum() == 18
    for png in ("confusion_matrix", "reliability", "roc", "predictions", "class_distribution"):
        assert (out / f"{png}.png").stat().st_size > 5000
    assert "clean" in (out / "summary.md").read_text() and "clean:" in result.stdout


def test_evaluate_can_record_its_figures_in_the_weights_folder(kaggle_dataset, tiny_baseline, tmp_path):
    folder = tmp_path / "w"
    shutil.copytree(tiny_baseline, folder)
    run_module("training.evaluate", "--weights", folder, "--data", kaggle_dataset, "--train-data", kaggle_dataset / "Training",
               "--out", tmp_path / "report", "--cache-dir", "", "--write-config")
    config = Classifier.from_pretrained(folder).config  # still loads: shards and their sha256 untouched
    assert config.metrics["test"]["n"] == 18 and config.metrics["test_clean"]["n"] == 16 and config.metrics["leaked"] == 2
    assert "Testing, clean subset | 16 |" in (folder / "README.md").read_text()


def test_audit_finds_planted_duplicates(kaggle_dataset, tmp_path):
    out = tmp_path / "twins.csv"
    result = run_module("training.audit", "--data", kaggle_dataset, "--out", out, "--cache-dir", "")
    assert "test vs train: 2 of 18 images" in result.stdout
    rows = list(csv.DictReader(open(out)))
    leaked = [r for r in rows if r["split_a"] == "test" and r["split_b"] == "train"]
    assert {os.path.basename(r["path_a"]) for r in leaked} == {"Te-leak-0.png", "Te-leak-1.png"}
    assert any("Tr-0-dup.png" in r["path_a"] + r["path_b"] for r in rows if r["split_a"] == r["split_b"] == "train")


def boxed_copies(kaggle_dataset, folder, seen_validation=False):
    """A figshare-like box folder: copies of Kaggle training gliomas in the training band (so they have twins
    there), one unseen slice in the box-validation band (with `seen_validation`, a copy of a training glioma
    instead), and copies of test gliomas in the evaluation part."""
    from training.boxes import BOX_VAL_FROM, EVAL_FROM, GUARD

    (folder / "glioma").mkdir(parents=True)
    unseen = folder / "unseen.png"
    if seen_validation:
        shutil.copy(sorted((kaggle_dataset / "Training" / "glioma_tumor").glob("Tr-0-*.png"))[0], unseen)
    else:
        synthetic_slice(0, 777).save(unseen)
    sources = sorted((kaggle_dataset / "Training" / "glioma_tumor").glob("Tr-0-00[0-4].png")) + [unseen] + \
        sorted((kaggle_dataset / "Testing" / "glioma_tumor").glob("Te-0-00[0-2].png"))
    numbers = [BOX_VAL_FROM["glioma"] - GUARD - 10 + k for k in range(5)] + [BOX_VAL_FROM["glioma"]] + [EVAL_FROM["glioma"] + k for k in range(3)]
    rows = []
    for number, source in zip(numbers, sources):
        shutil.copy(source, folder / "glioma" / f"{number}.png")
        rows.append(f"glioma/{number}.png,glioma,48,48,6,6,22,22")
    unseen.unlink()
    (folder / "boxes.csv").write_text("path,label,width,height,x_min,y_min,x_max,y_max\n" + "\n".join(rows) + "\n")
    return folder


@pytest.mark.slow  # a gated run, its soup and the choice: 30 s
def test_a_gated_model_trains_on_frozen_features_with_the_box_loss(kaggle_dataset, tiny_resnet, tmp_path):
    boxes = boxed_copies(kaggle_dataset, tmp_path / "boxes")
    out = tmp_path / "gated"
    args = ["--model", "resnet50_gated", "--init", tiny_resnet, "--data", kaggle_dataset, "--boxes", boxes, "--freeze-through", "layer4",
            "--epochs", "2", "--optimizer", "adamw", "--lr", "1e-3", "--select-metric", "pointing_new", "--accuracy-slack", "1",
            "--cache-dir", tmp_path / "cache", "--image-size", "64", *FAST[2:]]
    result = run_module("training.fit", *args, "--out", out)
    log = (out / "train_log.txt").read_text()
    notes = json.loads(log.split("boxes: ")[1].splitlines()[0])
    assert notes["boxed_slices_trained_on"] + notes["boxed_slices_left_out_as_twins_of_validation"] == 5
    assert notes["box_validation"] == 1 and notes["box_validation_without_training_twin"] == 1
    assert notes["boxes_carried_to_training_images"] >= 3
    assert "init: resnet50 weights" in log and "new: attention\n" in log and "start: val_acc" in log
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert len(rows) == 2 and all(float(r["train_box_loss"]) > 0 for r in rows) and rows[0]["val_pointing"] != ""
    assert all(r["val_pointing_new"] == r["val_pointing"] for r in rows)  # the one box-validation slice has no twin
    classifier = Classifier.from_pretrained(out / "weights")
    config = classifier.config
    assert config.architecture == "resnet50_gated" and classifier.explain_settings() == ("gradcam", ("gated",))
    assert {"test", "test_clean", "validation", "localisation_validation"} <= set(config.metrics)
    assert config.provenance["boxes"]["box_validation"] == 1 and config.metrics["localisation_validation"]["n_new"] == 1
    # The frozen stages are the --init weights' own, and their outputs were cached for the next run.
    start = Classifier.from_pretrained(tiny_resnet).model.state_dict()
    assert all(torch.equal(start[k], v) for k, v in classifier.model.state_dict().items() if k.startswith(("conv1", "layer")))
    assert len(list((tmp_path / "cache").glob("frozen-resnet50_gated-layer4-*.npz"))) == 4  # train, boxed slices, val, box validation
    assert "Traceback" not in result.stderr
    # training.choose reads the kept epoch back, and holds it to the accuracy rule it is given.
    figures = read_run(out)
    kept = next(r for r in rows if int(r["epoch"]) == config.metrics["best_epoch"])
    assert figures.val_acc == float(kept["val_acc"]) and figures.pointing_new == float(kept["val_pointing_new"])
    assert choose([figures], "pointing_new", 0.0, 0.0) is figures and choose([figures], "pointing_new", 1.0, 0.0) is None
    # training.soup averages it with a copy whose head moved, judges the average as a run's kept epoch, and choose reads it.
    state = classifier.model.state_dict()
    moved = {k: v + 1.0 if k == "fc.bias" else v for k, v in state.items()}
    save_weights(moved, ModelConfig.load(out / "weights" / "config.json"), tmp_path / "moved")
    soup = tmp_path / "soup"
    result = run_module("training.soup", out, tmp_path / "moved", "--out", soup, "--cache-dir", tmp_path / "cache")
    mixed = Classifier.from_pretrained(soup / "weights")
    assert torch.allclose(mixed.model.state_dict()["fc.bias"], state["fc.bias"] + 0.5)
    assert torch.equal(mixed.model.state_dict()["layer4.0.conv1.weight"], state["layer4.0.conv1.weight"])
    assert [m["folder"] for m in mixed.config.provenance["soup"]] == [str(out / "weights"), str(tmp_path / "moved")]
    assert {"test", "test_clean", "validation", "localisation_validation"} <= set(mixed.config.metrics)
    assert split_recipe_of(mixed.config) == split_recipe_of(config)  # later commands rebuild the members' split
    assert "(training.soup) of" in (soup / "weights" / "README.md").read_text()
    souped = read_run(soup)
    assert souped.epoch is None and souped.val_acc == mixed.config.metrics["validation"]["accuracy"]
    assert read_run(soup / "weights") == dataclasses.replace(souped, run=soup / "weights")  # a soup's weights folder alone
    assert "| soup |" in table([figures, souped], None, 0.0, 1.0)
    failed = run_module("training.soup", out, tiny_resnet, "--out", tmp_path / "mixed", expect=2)
    assert "a soup averages one architecture." in failed.stderr and "Traceback" not in failed.stderr


@pytest.mark.slow  # a short gated run and two refusals: 25-40 s
def test_a_box_refit_teaches_the_gate_with_the_box_validation_and_judges_no_pointing(kaggle_dataset, tiny_resnet, tmp_path):
    boxes = boxed_copies(kaggle_dataset, tmp_path / "boxes")
    args = ["--model", "resnet50_gated", "--init", tiny_resnet, "--data", kaggle_dataset, "--boxes", boxes, "--box-refit",
            "--freeze-through", "layer4", "--epochs", "2", "--optimizer", "adamw", "--lr", "1e-3", "--cache-dir", tmp_path / "cache",
            "--image-size", "64", *FAST[2:]]
    out = tmp_path / "refit"
    result = run_module("training.fit", *args, "--select-metric", "last", "--out", out)
    log = (out / "train_log.txt").read_text()
    notes = json.loads(log.split("boxes: ")[1].splitlines()[0])
    # The slice of the box-validation band is trained on too: six in all, less those that are twins of validation images.
    assert notes["boxed_slices_trained_on"] + notes["boxed_slices_left_out_as_twins_of_validation"] == 6
    assert notes["refit"] and notes["box_validation"] == 0
    row = next(csv.DictReader(open(out / "metrics.csv")))
    assert float(row["train_box_loss"]) > 0 and row["val_pointing"] == "" and " box " in log and "val pointing" not in log
    config = Classifier.from_pretrained(out / "weights").config
    assert "localisation_validation" not in config.metrics and config.provenance["boxes"]["refit"]
    assert config.metrics["best_epoch"] == 2  # --select-metric last
    with pytest.raises(UsageError, match="learnt the box validation"):
        read_run(out)
    assert "Traceback" not in result.stderr
    failed = run_module("training.fit", *args, "--select-metric", "pointing", "--out", tmp_path / "no", expect=2)
    assert "needs --boxes (without --box-refit) and a validation split." in failed.stderr and "Traceback" not in failed.stderr
    failed = run_module("training.fit", *[a for a in args if a not in ("--boxes", boxes)], "--out", tmp_path / "none", expect=2)
    assert "pass --boxes too." in failed.stderr and "Traceback" not in failed.stderr


def test_choose_takes_the_best_pointing_among_runs_within_the_accuracy_rule(tmp_path):
    a, b, c, old = (RunFigures(tmp_path / n, 3, acc, 0.8, new) for n, acc, new in
                    (("a", 0.985, 0.70), ("b", 0.990, 0.74), ("c", 0.975, 0.90), ("old", 0.990, None)))
    assert choose([a, b, c, old], "pointing_new", 0.9877, 0.005) is b  # c lost too much accuracy; old has no such figure
    assert choose([a, old], "pointing", 0.9877, 0.005) is old  # a tie on the figure goes to the higher accuracy
    assert "below the accuracy rule" in table([a, b, c], b, 0.9877, 0.005).splitlines()[4]
    with pytest.raises(UsageError, match="not a finished training.fit"):
        read_run(tmp_path / "a")


def test_a_training_seed_changes_the_batches_and_not_the_split():
    args = resolve_args(get_args_parser().parse_args(["--seed", "3", "--out", "x"]))
    assert args.train_seed == 3
    other = resolve_args(get_args_parser().parse_args(["--seed", "3", "--train-seed", "4", "--out", "x"]))
    assert SplitRecipe.from_mapping(vars(args)) == SplitRecipe.from_mapping(vars(other))
    order = [epoch_batches(64, run, 0, 0, 1, torch.device("cpu"))[0] for run in (args, other)]
    assert not torch.equal(*order)


def test_a_resumed_run_keeps_its_recipe_and_takes_a_time_limit_of_its_own(tmp_path):
    first = resolve_args(get_args_parser().parse_args(["--lr", "3e-5", "--max-minutes", "150", "--out", str(tmp_path)]))
    torch.save({"args": vars(first)}, tmp_path / "checkpoint.pt")

    def resume(*flags):
        return resolve_args(get_args_parser().parse_args(["--resume", str(tmp_path), *flags]))

    assert resume("--max-minutes", "40").max_minutes == 40  # this sitting's limit
    assert resume().max_minutes == 0 and resume().lr == 3e-5  # no limit unless asked; the recipe is the run's own
    assert resume("--lr", "1e-3").lr == 3e-5


def test_a_trunk_learning_rate_scale_slows_every_parameter_but_the_heads():
    model = create_model("baseline", image_size=64)

    def parse(*flags):
        return resolve_args(get_args_parser().parse_args(["--model", "baseline", "--lr", "1e-3", *flags, "--out", "x"]))

    optimizer = build_optimizer(parse("--trunk-lr-scale", "0.1"), model)
    head = {id(p) for p in model.classifier.parameters()}
    lr_of = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    assert sorted(lr_of) == sorted(id(p) for p in model.parameters())  # each parameter in one group
    assert {lr_of[i] for i in head} == {1e-3}
    assert [lr for i, lr in lr_of.items() if i not in head] == pytest.approx([1e-4] * (len(lr_of) - len(head)))
    assert optimizer.param_groups[0]["lr"] == 1e-3
    plain = build_optimizer(parse(), model)
    assert len(plain.param_groups) == 2 and {g["lr"] for g in plain.param_groups} == {1e-3}  # as before the flag
    with pytest.raises(UsageError, match="--finetune head") as refusal:
        check_flags(parse("--trunk-lr-scale", "0"))  # before any data is read
    assert one_sentence(str(refusal.value))


@pytest.mark.slow  # two runs
def test_pseudo_boxes_from_a_gated_teacher_and_mirrored_slices_join_the_box_loss(kaggle_dataset, tiny_resnet, tmp_path):
    boxes = boxed_copies(kaggle_dataset, tmp_path / "boxes")
    args = ["--model", "resnet50_gated", "--init", tiny_resnet, "--data", kaggle_dataset, "--boxes", boxes, "--freeze-through", "layer4",
            "--epochs", "1", "--optimizer", "adamw", "--lr", "1e-3", "--cache-dir", tmp_path / "cache", "--image-size", "64", *FAST[2:]]
    run_module("training.fit", *args, "--out", tmp_path / "teacher")
    out = tmp_path / "student"
    result = run_module("training.fit", *args, "--out", out, "--box-mirrors", "--pseudo-boxes", tmp_path / "teacher" / "weights",
                        "--pseudo-min-prob", "0", "--pseudo-min-gate", "0")
    log = (out / "train_log.txt").read_text()
    notes = json.loads(log.split("boxes: ")[1].splitlines()[0])
    assert notes["mirrored"] is True
    found = int(log.split("pseudo-boxes: ")[1].split()[0])
    assert found > 0  # with no confidence bar, every unboxed tumour image of Training gets its teacher's box
    assert Classifier.from_pretrained(out / "weights").config.provenance["boxes"]["pseudo_boxes"] == found
    assert "Traceback" not in result.stderr
    # A teacher of another architecture is refused in one sentence.
    refused = run_module("training.fit", *args, "--out", tmp_path / "wrong", "--pseudo-boxes", tiny_resnet, expect=2)
    assert "holds resnet50 weights; it needs resnet50_gated weights" in refused.stderr and "Traceback" not in refused.stderr


@pytest.mark.slow  # the whole network trains
def test_the_whole_gated_network_trains_with_the_box_loss_and_augmented_masks(kaggle_dataset, tiny_resnet, tmp_path):
    boxes = boxed_copies(kaggle_dataset, tmp_path / "boxes")
    out = tmp_path / "whole"
    run_module("training.fit", "--model", "resnet50_gated", "--init", tiny_resnet, "--data", kaggle_dataset, "--boxes", boxes,
               "--epochs", "1", "--box-mass-weight", "1", "--out", out, "--cache-dir", "", "--image-size", "64", *FAST[2:])
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert len(rows) == 1 and float(rows[0]["train_box_loss"]) > 0
    trained = Classifier.from_pretrained(out / "weights").model.state_dict()
    start = Classifier.from_pretrained(tiny_resnet).model.state_dict()
    assert not torch.equal(trained["layer1.0.conv1.weight"], start["layer1.0.conv1.weight"])  # the trunk trained too


@pytest.mark.slow  # a run
def test_a_gate_trained_on_augmented_images_leaves_the_frozen_trunk_and_its_statistics_as_they_were(kaggle_dataset, tiny_resnet,
                                                                                                     tmp_path):
    boxes = boxed_copies(kaggle_dataset, tmp_path / "boxes")
    out = tmp_path / "head"
    run_module("training.fit", "--model", "resnet50_gated", "--init", tiny_resnet, "--data", kaggle_dataset, "--boxes", boxes,
               "--finetune", "head", "--epochs", "1", "--box-mass-weight", "1", "--out", out, "--cache-dir", "", "--image-size", "64",
               *FAST[2:])
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert len(rows) == 1 and float(rows[0]["train_box_loss"]) > 0
    trained = Classifier.from_pretrained(out / "weights").model.state_dict()
    start = Classifier.from_pretrained(tiny_resnet).model.state_dict()
    trunk = [k for k in trained if k.startswith(("conv1", "bn1", "layer"))]
    assert any(k.endswith("running_mean") for k in trunk)  # batch-norm statistics are among what must not move
    assert all(torch.equal(trained[k], start[k]) for k in trunk)
    assert not torch.equal(trained["fc.weight"], start["fc.weight"])  # the head trained (the gate starts at zero and trains too)


@pytest.mark.slow  # four runs
def test_fit_refuses_what_it_cannot_train_in_one_sentence(kaggle_dataset, tiny_resnet, tmp_path):
    boxes = boxed_copies(kaggle_dataset, tmp_path / "boxes")
    seen = boxed_copies(kaggle_dataset, tmp_path / "seen", seen_validation=True)  # every box-validation slice has a Training twin
    base = ["--data", kaggle_dataset, "--out", tmp_path / "o", "--cache-dir", "", *FAST]
    for extra, words in ((["--model", "resnet50", "--init", tiny_resnet, "--boxes", boxes], "choose resnet50_gated"),
                         (["--model", "resnet50_gated", "--init", tiny_resnet, "--freeze-through", "fc"], "can be frozen through"),
                         (["--model", "baseline", "--init", tiny_resnet], "holds resnet50 weights"),
                         (["--model", "resnet50_gated", "--init", tiny_resnet, "--boxes", seen, "--freeze-through", "layer4",
                           "--select-metric", "pointing_new"], "choose --select-metric pointing")):
        result = run_module("training.fit", *extra, *base, expect=2)
        message = result.stderr.strip().splitlines()[-1]
        assert words in message and one_sentence(message[len("error: "):]) and "Traceback" not in result.stderr


@pytest.mark.slow  # a run per architecture
def test_every_registered_model_starts_or_ends_in_one_sentence(kaggle_dataset, tmp_path):
    from brain_tumor.models import ARCHITECTURES

    offline = {"TORCH_HOME": str(tmp_path / "torch"), "HTTPS_PROXY": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"}
    for name in ARCHITECTURES:
        result = run_module("training.fit", "--model", name, "--data", kaggle_dataset, "--out", tmp_path / name, "--epochs", "1",
                            "--max-per-class", "3", "--no-test", "--cache-dir", "", *FAST, expect=None, env=offline)
        assert "Traceback" not in result.stderr, name
        if result.returncode:  # ImageNet weights cannot be fetched here: one sentence that says what to do
            message = result.stderr.strip().splitlines()[-1]
            assert result.returncode == 2 and "--init scratch" in message and one_sentence(message[len("error: "):]), name
        else:
            assert Classifier.from_pretrained(tmp_path / name / "weights").config.architecture == name


def test_augmenting_masks_moves_them_with_the_image():
    images = torch.zeros(4, 3, 32, 32, dtype=torch.uint8)
    images[:, :, 4:12, 4:12] = 255  # a bright square, boxed exactly
    masks = torch.zeros(4, 32, 32)
    masks[:, 4:12, 4:12] = 1
    x, m = augment(images, AugmentConfig(), torch.Generator().manual_seed(1), masks=masks)
    bright = x.mean(1) > 127
    assert m.shape == (4, 32, 32) and ((m > 0.5) == bright).float().mean() > 0.97


def test_carried_boxes_go_only_to_twins_with_the_same_label():
    from training.attention import carry_boxes
    from training.boxes import BoxedSlice

    images = torch.stack([torch.from_numpy(np.array(synthetic_slice(c, 40 + c, 32))).permute(2, 0, 1) for c in (0, 1, 3)])
    slices = [BoxedSlice(ROOT / f"{i}.png", label, 10 + i, (64, 64), (8, 8, 24, 24)) for i, label in enumerate((0, 1, 0))]
    found = carry_boxes(slices, images, np.array([0, 1, 3]), twins.thumbnails(images))
    assert found == {0: (4.0, 4.0, 12.0, 12.0), 1: (4.0, 4.0, 12.0, 12.0)}  # image 2 is slice 2's twin, but labelled otherwise


def test_the_gate_loss_rewards_a_gate_that_fires_inside_the_box():
    from training.attention import gate_loss

    masks = torch.zeros(3, 28, 28)
    masks[:2, :4, :4] = 1  # two tumours in the top-left corner; the third image has none (an empty map)
    inside, outside = torch.full((3, 1, 14, 14), -6.0), torch.full((3, 1, 14, 14), -6.0)
    inside[:2, :, :2, :2] = 6.0
    outside[:2, :, 10:12, 10:12] = 6.0
    for mass in (0.0, 1.0):
        assert gate_loss(inside, masks, mass) < 0.01 < 0.1 < gate_loss(outside, masks, mass)
    # The soft pointing game counts only images with a tumour, and only where the gate's peak is.
    assert gate_loss(outside, masks, 1.0) - gate_loss(outside, masks, 0.0) > 5
    assert torch.isclose(gate_loss(inside[2:], masks[2:], 1.0), gate_loss(inside[2:], masks[2:], 0.0))


def test_twin_groups_never_straddle_the_split():
    labels = np.repeat(np.arange(4), 25)
    group_ids = np.arange(100)
    group_ids[10:20] = 10  # ten images that are all twins of each other
    train, val = twins.grouped_split(labels, group_ids, 0.2, seed=3)
    assert len(set(train) & set(val)) == 0 and len(train) + len(val) == 100
    assert set(range(10, 20)) <= set(train) or set(range(10, 20)) <= set(val)
    assert 15 <= len(val) <= 20


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

    fake = types.ModuleType("kagglehub")

    def dataset_download(handle):
        raise ConnectionError("no network")

    fake.dataset_download = dataset_download
    monkeypatch.setitem(sys.modules, "kagglehub", fake)
    with pytest.raises(DatasetError, match="download it by hand and pass its folder"):
        discover("kaggle")


def test_augment_keeps_shape_range_and_varies():
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    out = augment(images, AugmentConfig(), torch.Generator().manual_seed(0))
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
