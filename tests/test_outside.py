"""The outside collections: their reading and split, balanced sampling, the stacked augmentation, training on them,
the outside benchmark and the scan rule chosen on them (a generated folder that mirrors the real one's names)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from brain_tumor import Classifier
from brain_tumor.card import model_card, summary_line
from brain_tumor.weights import save_weights
from training import outside
from training.augment import AugmentConfig, augment
from tests.helpers import nifti_bytes, run_module

SLICES = 10  # per TCGA stack; tumour on 5 and 6
TUMOUR = (5, 6)


def _record() -> dict:
    return json.loads(outside.SPLIT_FILE.read_text())


def _head(size: int, seed: int, tumour: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[:size, :size] / size
    head = (((ys - 0.5) / 0.42) ** 2 + ((xs - 0.5) / 0.36) ** 2 <= 1) * 110.0 + rng.normal(0, 6, (size, size))
    if tumour:
        head[((ys - 0.4) / 0.1) ** 2 + ((xs - 0.6) / 0.1) ** 2 <= 1] = 230
    return np.clip(head, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def outside_folder(tmp_path_factory):
    """Two train, one validation and one evaluation patient or subject of each collection, under their real names."""
    root = tmp_path_factory.mktemp("outside")
    record = _record()
    for part, count in (("train", 2), ("val", 1), ("eval", 1)):
        for k, patient in enumerate(record["tcga-lgg"]["parts"][part][:count]):
            folder = root / "tcga-lgg" / patient
            folder.mkdir(parents=True)
            for n in range(1, SLICES + 1):
                for q, sequence in enumerate(outside.TCGA_SEQUENCES):
                    Image.fromarray(_head(64, 1000 * k + 10 * n + q, n in TUMOUR)).save(folder / f"{patient}_{n}_{sequence}.jpg")
                mask = np.zeros((64, 64), np.uint8)
                if n in TUMOUR:
                    mask[22:30, 34:42] = 255
                Image.fromarray(mask).save(folder / f"{patient}_{n}_mask.png")
        groups = record["oasis"]["groups"]
        for key in [k for k, g in groups.items() if g in record["oasis"]["parts"][part]][:4]:
            (root / "oasis" / key).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(_head(56, hash(key) % 1000, False)[:, 4:52]).save(root / "oasis" / key)
        for subject in record["nichart"]["parts"][part][:1]:
            (root / "nichart").mkdir(exist_ok=True)
            for sequence in outside.NICHART_SEQUENCES:
                volume = np.stack([_head(32, i, False) * (0 if i in (0, 11) else 1) for i in range(12)], axis=2).astype(np.float32)
                (root / "nichart" / f"{subject}_{sequence}.nii.gz").write_bytes(nifti_bytes(volume, zooms=(2.0, 2.0, 2.0)))
    return root


def test_tcga_slices_are_labelled_by_their_mask_and_neighbours_of_a_tumour_teach_nothing(outside_folder):
    slices = outside.tcga_slices(outside_folder)
    assert len(slices) == 4 * SLICES * 3
    one = [s for s in slices if s.subject == slices[0].subject and s.sequence == "post"]
    assert [s.index for s in one if s.label == "glioma"] == list(TUMOUR)
    assert [s.index for s in one if s.edge] == [4, 7]  # within TUMOUR_FREE_MARGIN of a tumour slice, mask empty
    taught = outside.training_slices(outside_folder, "train")
    assert not any(s.edge for s in taught) and {s.collection for s in taught} == {"tcga-lgg", "oasis", "nichart"}


def test_every_subject_is_in_one_part_and_the_parts_never_share_one(outside_folder):
    everything = outside.all_slices(outside_folder)
    parts = {part: {(s.collection, s.subject) for s in outside.in_part(everything, part)} for part in outside.PARTS}
    assert all(parts.values()) and not (parts["train"] & parts["val"] or parts["train"] & parts["eval"] or parts["val"] & parts["eval"])
    assert outside.part_of("tcga-lgg", "TCGA_XX_0000_20000101") is None  # a patient the record does not name
    record = _record()["tcga-lgg"]["parts"]
    assert not set(record["train"]) & set(record["eval"]) and len(record["eval"]) >= 30


def test_a_packed_copy_holds_the_training_parts_in_fewer_bytes_and_reads_as_the_original(outside_folder, tmp_path):
    written = outside.pack(outside_folder, tmp_path / "packed", side=56, quality=80)
    packed = tmp_path / "packed"
    original = {part: outside.training_slices(outside_folder, part) for part in outside.PARTS}
    copy = {part: outside.training_slices(packed, part) for part in outside.PARTS}
    def key(s):  # OASIS's index is its file's place among the files there, the evaluation part's too
        return s.collection, s.subject, s.sequence, s.path.name, s.index if s.collection != "oasis" else None, s.label

    assert [key(s) for s in copy["train"]] == [key(s) for s in original["train"]]
    assert [key(s) for s in copy["val"]] == [key(s) for s in original["val"]] and not copy["eval"]
    tcga = [s for s in copy["train"] if s.collection == "tcga-lgg"]
    assert Image.open(tcga[0].path).size == (56, 56)  # the 64-px slices made smaller; OASIS's 48×56 ones copied
    oasis = next(s for s in copy["train"] if s.collection == "oasis")
    assert oasis.path.read_bytes() == (outside_folder / oasis.path.relative_to(packed)).read_bytes()
    edge = [s for s in outside.tcga_slices(packed) if s.edge]
    assert edge and not any(s.path.exists() for s in edge) and all(s.mask.exists() for s in edge)
    files = [f for f in packed.rglob("*") if f.is_file()]
    assert sum(w["files"] for w in written.values()) == len(files)
    assert sum(w["bytes"] for w in written.values()) == sum(f.stat().st_size for f in files)
    result = run_module("training.pack_outside", "--data", outside_folder, "--out", packed, expect=2)
    assert result.stderr.strip().splitlines()[-1] == f"error: {packed} is not empty; pack into a new folder."


def test_balanced_sampling_gives_each_class_and_each_collection_within_it_the_same_share():
    cells = ["kaggle/glioma"] * 100 + ["tcga-lgg/glioma"] * 900 + ["kaggle/notumor"] * 50 + ["oasis/notumor"] * 10 + ["nichart/notumor"] * 40
    weights = outside.balanced_weights(cells)
    share = {cell: float(weights[[i for i, c in enumerate(cells) if c == cell]].sum() / weights.sum()) for cell in set(cells)}
    assert share["kaggle/glioma"] == pytest.approx(0.25) and share["tcga-lgg/glioma"] == pytest.approx(0.25)
    assert all(share[c] == pytest.approx(1 / 6) for c in ("kaggle/notumor", "oasis/notumor", "nichart/notumor"))


def test_stacked_augmentation_changes_quality_and_appearance_and_keeps_masks_in_step():
    images = torch.from_numpy(np.stack([np.repeat(_head(64, i, True)[None], 3, 0) for i in range(8)]))
    masks = torch.from_numpy(np.stack([(_head(64, i, True) > 200).astype(np.uint8) for i in range(8)]))
    config = AugmentConfig.stacked()
    first, warped = augment(images, config, torch.Generator().manual_seed(1), masks=masks)
    again, _ = augment(images, config, torch.Generator().manual_seed(1), masks=masks)
    assert torch.equal(first, again) and first.shape == (8, 3, 64, 64) and 0 <= first.min() and first.max() <= 255
    assert torch.allclose(first[:, 0], first[:, 1]) and torch.allclose(first[:, 1], first[:, 2])  # grey stays grey
    plain = dict(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), rotation=0.0, hflip=False, brightness=0.0, contrast=0.0)
    for name in ("blur", "noise", "thick", "gamma", "curve", "strip"):
        changed = augment(images, AugmentConfig(**plain, **{name: 1.0}), torch.Generator().manual_seed(2))
        assert (changed - images.float()).abs().mean() > 0.5, name
    assert torch.allclose(augment(images, AugmentConfig(**plain), torch.Generator().manual_seed(2)), images.float(), atol=1e-3)
    # the spatial part moves the masks with the images: the mask stays on the bright blob
    bright = first[:, 0] > 150
    assert (warped > 0.5).sum() > 0 and ((warped > 0.5) & bright).sum() / (warped > 0.5).sum() > 0.5


def test_the_lesion_transform_changes_a_tumour_inside_its_mask_only_and_needs_masks(kaggle_dataset, tmp_path):
    images = torch.from_numpy(np.stack([np.repeat(_head(64, i, True)[None], 3, 0) for i in range(8)]))
    masks = torch.zeros(8, 64, 64, dtype=torch.uint8)
    masks[:4, 20:40, 20:40] = 1  # the last four have no tumour
    plain = dict(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), rotation=0.0, hflip=False, brightness=0.0, contrast=0.0)
    changed, warped = augment(images, AugmentConfig(**plain, lesion=1.0), torch.Generator().manual_seed(3), masks=masks)
    difference = (changed - images.float()).abs()
    assert torch.equal(warped > 0.5, masks > 0)  # no spatial change here: the masks are as they were
    assert (difference[:4, :, 26:34, 26:34].flatten(1).mean(1) > 1).all()  # inside each tumour: darker or brighter
    assert difference[:, :, :, :10].max() < 1e-3 and difference[4:].max() < 1e-3  # outside the masks, and without one: unchanged
    assert torch.allclose(augment(images, AugmentConfig(**plain, lesion=1.0), torch.Generator().manual_seed(3)), images.float(), atol=1e-3)
    refused = run_module("training.fit", "--data", kaggle_dataset, "--out", tmp_path / "o", "--augment-lesion", "0.5", expect=2)
    message = refused.stderr.strip().splitlines()[-1]
    assert message == "error: --augment-lesion changes tumours inside their masks; pass --outside (TCGA-LGG's masks) or --boxes."


def test_one_stacked_transform_can_be_left_out_and_only_from_the_stacked_augmentation(kaggle_dataset, tmp_path):
    full, less = AugmentConfig.stacked(), AugmentConfig.stacked().without(["strip", "thick"])
    assert less.strip == less.thick == 0 and full.strip > 0 and full.thick > 0
    assert {k: v for k, v in vars(less).items() if k not in ("strip", "thick")} == {k: v for k, v in vars(full).items() if k not in ("strip", "thick")}
    refused = run_module("training.fit", "--data", kaggle_dataset, "--out", tmp_path / "o", "--augment-without", "strip", expect=2)
    message = refused.stderr.strip().splitlines()[-1]
    assert message == "error: --augment-without takes transforms out of --augment stacked, and this run's is standard."


@pytest.mark.slow  # a training run, the benchmark twice and the rule chooser (about 60 s)
def test_training_on_the_outside_collections_and_the_benchmark_that_judges_them(outside_folder, kaggle_dataset, tmp_path):
    out = tmp_path / "run"
    result = run_module("training.fit", "--model", "baseline", "--init", "scratch", "--data", kaggle_dataset, "--outside", outside_folder,
                        "--augment", "stacked", "--epoch-size", "48", "--out", out, "--epochs", "1", "--image-size", "32",
                        "--batch-size", "8", "--workers", "1", "--device", "cpu", "--cache-dir", tmp_path / "cache")
    assert "outside: train" in result.stdout + result.stderr
    config = Classifier.from_pretrained(out / "weights").config
    notes = config.provenance["split_notes"]["outside"]
    assert notes["train"]["tcga-lgg/post/glioma"] == 2 * len(TUMOUR) and notes["val"]["oasis/T1/notumor"] >= 1
    assert config.metrics["validation"]["n"] > 4 * 1  # Kaggle's validation share and the outside validation part
    from training.calibrate_ood import calibrate, get_args_parser
    calibrated = calibrate(get_args_parser().parse_args(["--weights", str(out / "weights"), "--cache-dir", str(tmp_path / "cache")]))
    assert calibrated["n_validation"] == config.metrics["validation"]["n"]  # its bounds come from the run's own validation
    sure = run_module("training.reliability", "--weights", out / "weights", "--out", tmp_path / "reliability",
                      "--cache-dir", tmp_path / "cache")
    measured = json.loads((tmp_path / "reliability" / "reliability.json").read_text())
    cells = measured["validation"]["the folder's temperature"]
    assert set(cells) == {"all", "kaggle", "tcga-lgg", "oasis", "nichart"}  # every collection of the run's validation
    assert sum(c["n"] for name, c in cells.items() if name != "all") == cells["all"]["n"] == config.metrics["validation"]["n"]
    assert len(measured["maps, cross-fitted over subjects"]) == 6 and "clean" in measured["kaggle testing (measured, never fitted on)"]
    assert "validation, temperature 1: tcga-lgg" in sure.stdout and (tmp_path / "reliability" / "reliability.png").stat().st_size > 10_000

    mirror = run_module("training.choose_mirror", "--weights", out, "--write", "--cache-dir", tmp_path / "cache")
    chosen = Classifier.from_pretrained(out / "weights").config
    compared = chosen.metrics["mirror_average"]
    assert {"all", "kaggle", "tcga-lgg", "oasis", "nichart"} <= set(compared) and compared["all"]["n"] == config.metrics["validation"]["n"]
    assert chosen.mirror_average == (compared["macro_f1_mirror_average"] > compared["macro_f1_one_view"])
    assert chosen.ood["bounds"] and "wrote" in mirror.stdout and "nichart" in mirror.stdout

    weights = out / "weights"
    scores = tmp_path / "train-scores"
    run_module("training.evaluate_outside", "--weights", weights, "--data", outside_folder, "--part", "train", "--scans-only",
               "--out", scores, "--backend", "torch")
    chosen = run_module("training.choose_scan_rule", "--scores", scores, "--weights", weights, "--write")
    assert "chosen: level" in chosen.stdout and Classifier.from_pretrained(weights).config.scan_rule["chosen_by"]
    report = tmp_path / "eval"
    done = run_module("training.evaluate_outside", "--weights", weights, "--data", outside_folder, "--out", report, "--cam-slices", "2",
                      "--backend", "torch", "--write-config")
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["part"] == "eval" and metrics["slices"]["tcga-lgg/post"]["tumour_found"]["n"] == len(TUMOUR)
    assert sum(e["n"] for e in metrics["slices"]["tcga-lgg/post"]["found_by_size"].values()) == len(TUMOUR)
    assert metrics["scans"]["nichart/all"]["no_tumour_summary"]["n"] == 2 and metrics["scans"]["tcga-lgg/all"]["tumour_summary"]["n"] == 3
    assert metrics["pointing_game"]["flair"]["n"] == 2 and (report / "outside.png").stat().st_size > 10_000
    assert "TCGA-LGG tumour slices found" in done.stdout and "| TCGA-LGG post |" in (report / "summary.md").read_text()
    stored = Classifier.from_pretrained(weights).config
    assert stored.metrics["outside"]["part"] == "eval" and "Checked on held-out scans" in stored.scan_rule["checked"]
    assert "other collections' scans" in summary_line(stored) and "Outside the Kaggle collection" in model_card(stored)

    found = metrics["slices"]["tcga-lgg/flair"]["tumour_found"]["share"]
    compared = run_module("training.compare_outside", report, "--out", tmp_path / "attempts.png")
    row = next(line for line in compared.stdout.splitlines() if line.startswith("| eval |"))
    healthy = round(metrics["scans"]["nichart/all"]["no_tumour_summary"]["share"] * 2)
    assert f" / {100 * found:.1f}% |" in row and f"| {healthy} of 2 |" in row and row.endswith("| – |")  # no kaggle.json: no Kaggle figures
    assert (tmp_path / "attempts.png").stat().st_size > 10_000


@pytest.mark.slow  # a short run and two soups of it (about 30 s)
def test_a_weighted_soup_of_a_kaggle_model_and_an_outside_run_is_judged_on_the_outside_validation_too(outside_folder,
                                                                                                     kaggle_dataset, tmp_path):
    run = tmp_path / "run"
    run_module("training.fit", "--model", "baseline", "--init", "scratch", "--data", kaggle_dataset, "--outside", outside_folder,
               "--epoch-size", "32", "--out", run, "--epochs", "1", "--image-size", "32", "--batch-size", "8", "--workers", "1",
               "--device", "cpu", "--cache-dir", "", "--no-test", "--reset-bn", "16",  # validated on clean statistics
               "--augment-lesion", "0.5")  # TCGA-LGG's tumours darker or brighter inside their masks
    learnt = Classifier.from_pretrained(run / "weights")
    assert learnt.config.provenance["recipe"]["reset_bn"] == 16 and learnt.config.provenance["recipe"]["augment_lesion"] == 0.5
    # A Kaggle-only member on the same split: the run's weights with another head, and no outside collections in its recipe.
    config = learnt.config
    config.provenance["recipe"] = {k: v for k, v in config.provenance["recipe"].items() if k != "outside"}
    config.mirror_average = True  # chosen for that member alone: a soup of it is judged on one view, like a run
    state = learnt.model.state_dict()
    bias = [k for k in state if k.endswith("bias")][-1]  # the last layer's
    save_weights({k: v + 1.0 if k == bias else v for k, v in state.items()}, config, tmp_path / "kaggle")
    soup = tmp_path / "soup"
    result = run_module("training.soup", tmp_path / "kaggle", run, "--mix", "1,0", "1,3", "0,1", "--out", soup, "--cache-dir", "",
                        "--no-test")
    tried = json.loads((soup / "summary.json").read_text())["tried"]
    assert [t["shares"] for t in tried] == [[1.0, 0.0], [0.25, 0.75], [0.0, 1.0]]
    assert "kept the mix" in result.stdout
    mixed = Classifier.from_pretrained(soup / "weights").config
    kept = max(tried, key=lambda t: t["val_macro_f1"])  # the first best, as training.fit keeps epochs
    assert [m["share"] for m in mixed.provenance["soup"]] == kept["shares"]
    souped = Classifier.from_pretrained(soup / "weights").model.state_dict()
    assert torch.allclose(souped[bias], state[bias] + kept["shares"][0])
    # Judged on the run's own validation (Kaggle's share and the outside part), and still a model that learnt outside.
    assert mixed.metrics["validation"]["n"] == learnt.config.metrics["validation"]["n"] > 4 and not mixed.mirror_average
    assert mixed.provenance["recipe"]["outside"] == str(outside_folder) and "outside" in mixed.provenance["split_notes"]
    assert "weighted soup (training.soup, shares" in (soup / "weights" / "README.md").read_text()
    # --reset-bn: the same member, its batch-norm statistics estimated again on unaugmented training images.
    run_module("training.soup", tmp_path / "kaggle", run, "--mix", "0,1", "--reset-bn", "40", "--out", tmp_path / "reset",
               "--cache-dir", "", "--no-test")
    reset = Classifier.from_pretrained(tmp_path / "reset" / "weights")
    means = [k for k in state if k.endswith("running_mean")]
    assert means and all(not torch.allclose(reset.model.state_dict()[k], state[k]) for k in means)
    assert "40 unaugmented training images" in reset.config.provenance["batch_norm"]
    failed = run_module("training.soup", tmp_path / "kaggle", run, "--reset-bn", "-1", "--out", tmp_path / "no", expect=2)
    assert "--reset-bn is a number of training images" in failed.stderr and failed.stderr.count("\n") == 1
    failed = run_module("training.soup", tmp_path / "kaggle", run, "--mix", "0.5", "--out", tmp_path / "no", "--cache-dir", "",
                        expect=2)
    assert "one share per member (2 here)" in failed.stderr and failed.stderr.count("\n") == 1
    failed = run_module("training.soup", tmp_path / "kaggle", run, "--mix", "a,b", "--out", tmp_path / "no", expect=2)
    assert "is not a list of numbers such as 0.3,0.7." in failed.stderr and "Traceback" not in failed.stderr


def test_batch_norm_statistics_are_estimated_again_on_training_images_drawn_balanced_over_collections():
    from training.report import recompute_batch_norm
    model = torch.nn.Sequential(torch.nn.BatchNorm2d(3))
    model[0].running_mean.fill_(7.0)
    # One class from two collections: 10 white images and 90 black. Drawn balanced, half are white; drawn as they lie, a tenth.
    images = torch.cat([torch.full((10, 3, 4, 4), 255, dtype=torch.uint8), torch.zeros(90, 3, 4, 4, dtype=torch.uint8)])
    cells = ["a/glioma"] * 10 + ["b/glioma"] * 90
    config = type("Config", (), {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)})()
    recompute_batch_norm(model, images, outside.balanced_weights(cells), 4000, config, batch_size=50)
    assert torch.allclose(model[0].running_mean, torch.full((3,), 0.5), atol=0.05)
    assert not model.training


def test_an_epoch_size_without_balanced_sampling_is_refused_in_one_sentence(kaggle_dataset, tmp_path):
    failed = run_module("training.fit", "--model", "baseline", "--init", "scratch", "--data", kaggle_dataset, "--epoch-size", "64",
                        "--out", tmp_path / "run", "--epochs", "1", "--image-size", "32", "--cache-dir", "", expect=2)
    assert "pass --balance collections" in failed.stderr and "Traceback" not in failed.stderr


def test_tumour_slices_found_are_counted_by_the_share_of_the_slice_their_mask_covers(outside_folder):
    from training.evaluate_outside import SIZE_BINS, measure, summary_markdown

    item = next(s for s in outside.all_slices(Path(outside_folder)) if s.label == "glioma")
    mask = np.asarray(Image.open(item.mask).convert("L")) > 127
    assert outside.tumour_share(item) == pytest.approx(mask.mean()) and 0 < outside.tumour_share(item) < 1

    def row(sequence, share, predicted):
        return {"collection": "tcga-lgg", "sequence": sequence, "label": "glioma", "edge": 0, "tumour_share": share,
                "predicted": predicted, "ood": 0}

    rows = [row("flair", 0.004, "notumor"), row("flair", 0.005, "glioma"), row("flair", 0.01, "glioma"),
            row("flair", 0.08, "notumor"), row("pre", 0.08, "meningioma")]
    metrics = measure(rows, [], {})
    flair = metrics["slices"]["tcga-lgg/flair"]["found_by_size"]
    assert list(flair) == [name for _, _, name in SIZE_BINS]
    assert [(e["n"], e["share"]) for e in flair.values()][:2] == [(2, 0.5), (1, 1.0)] and flair["2.5-5%"]["n"] == 0
    assert flair["5% or more"]["share"] == 0 and metrics["slices"]["tcga-lgg/pre"]["found_by_size"]["5% or more"]["share"] == 1
    metrics["scan_rule"] = "a rule"
    assert "| flair | 50.0% [" in summary_markdown(metrics, "w", "eval") and "| – | 0.0% [" in summary_markdown(metrics, "w", "eval")


def test_the_comparison_of_attempts_refuses_a_folder_without_a_report_and_mixed_parts(tmp_path):
    failed = run_module("training.compare_outside", tmp_path, expect=2)
    assert "has no metrics.json" in failed.stderr and failed.stderr.count("\n") == 1
    for name, part in (("a", "eval"), ("b", "train")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps({"part": part, "slices": {}, "scans": {}}))
    mixed = run_module("training.compare_outside", tmp_path / "a", tmp_path / "b", expect=2)
    assert mixed.stderr.strip() == "error: the folders measure different parts (eval, train); compare one part at a time."


def test_the_reliability_command_asks_for_the_data_of_weights_that_record_none(tiny_baseline, tmp_path, capsys):
    from training.reliability import main
    assert main(["--weights", str(tiny_baseline), "--out", str(tmp_path / "r"), "--cache-dir", ""]) == 2
    stderr = capsys.readouterr().err
    assert "pass --data with the dataset they were trained on" in stderr and stderr.count("\n") == 1


def test_the_mirror_chooser_asks_for_the_data_of_weights_that_record_none(tiny_baseline, capsys):
    from training.choose_mirror import main
    assert main(["--weights", str(tiny_baseline), "--cache-dir", ""]) == 2
    stderr = capsys.readouterr().err
    assert "pass --data with the dataset they were trained on" in stderr and stderr.count("\n") == 1


def test_the_scan_rule_chooser_names_a_missing_score_folder(tiny_baseline, tmp_path):
    failed = run_module("training.choose_scan_rule", "--scores", tmp_path / "none", "--weights", tiny_baseline, expect=2)
    assert "has no slices.csv" in failed.stderr and failed.stderr.count("\n") == 1


@pytest.mark.slow  # a gated run (about 30 s)
def test_tcga_masks_teach_a_gated_model_beside_the_figshare_boxes(outside_folder, kaggle_dataset, boxes_folder, tiny_resnet, tmp_path):
    out = tmp_path / "gated"
    run_module("training.fit", "--model", "resnet50_gated", "--init", tiny_resnet, "--data", kaggle_dataset, "--boxes", boxes_folder,
               "--outside", outside_folder, "--epoch-size", "16", "--epochs", "1", "--out", out, "--cache-dir", "", "--image-size", "64",
               "--batch-size", "8", "--workers", "1", "--device", "cpu", "--no-test")
    boxes = Classifier.from_pretrained(out / "weights").config.provenance["boxes"]
    assert boxes["outside_tumour_masks"] == 2 * len(TUMOUR) * 3  # the train patients' tumour slices, every sequence


def test_calibration_maps_fit_what_they_can_and_the_temperature_per_class_keeps_every_answer():
    from training.calibration import fit_map, fit_temperature
    generator = torch.Generator().manual_seed(0)
    # Answers of glioma (class 0) are right 60% of the time at near-certainty; the other answers right 95% of the time
    # at low confidence: one temperature cannot serve both, a temperature per answered class can.
    answers = torch.randint(0, 4, (800,), generator=generator)
    right = torch.rand(800, generator=generator) < torch.where(answers == 0, 0.6, 0.95)
    labels = torch.where(right, answers, (answers + torch.randint(1, 4, (800,), generator=generator)) % 4)
    logits = torch.nn.functional.one_hot(answers, 4).float() * torch.where(answers == 0, 8.0, 1.0).unsqueeze(1)
    apply, fitted = fit_map("class temperature", logits, labels)
    assert torch.equal(apply(logits).argmax(1), answers)  # every answer kept
    t = fitted["temperature"]
    assert t[0] > 1 > max(t[1:])  # glioma's answers made less sure, the others surer
    one = fit_map("temperature", logits, labels)[1]["temperature"][0]
    assert one == pytest.approx(fit_temperature(logits, labels))
    nll = lambda z: torch.nn.functional.cross_entropy(z, labels).item()  # noqa: E731
    assert nll(apply(logits)) < nll(logits / one) < nll(logits)
    # Weighing the glioma answers three times as much moves the one temperature towards theirs.
    weights = torch.where(answers == 0, 3.0, 1.0)
    assert fit_map("temperature", logits, labels, weights)[1]["temperature"][0] > one
    with pytest.raises(ValueError, match="unknown calibration map"):
        fit_map("isotonic", logits, labels)


def test_the_distillation_term_is_nought_for_the_teachers_own_answers_and_grows_as_the_student_departs():
    from training.fit import distil_loss

    teacher = torch.tensor([[4.0, 0.0, -1.0, 0.5], [0.0, 3.0, 0.0, 0.0]])
    assert distil_loss(teacher, teacher, 2.0).item() == pytest.approx(0.0, abs=1e-6)
    near, far = teacher + torch.tensor([0.5, 0, 0, 0]), teacher.flip(1)
    assert 0 < distil_loss(near, teacher, 2.0).item() < distil_loss(far, teacher, 2.0).item()


@pytest.mark.slow  # a short run with a teacher (about 20 s)
def test_a_run_that_learns_other_collections_can_keep_a_teachers_answers_on_kaggle(outside_folder, kaggle_dataset, tiny_baseline,
                                                                                   tmp_path):
    common = ["--model", "baseline", "--data", kaggle_dataset, "--outside", outside_folder, "--epoch-size", "32", "--epochs", "1",
              "--image-size", "32", "--batch-size", "8", "--workers", "1", "--device", "cpu", "--cache-dir", "", "--no-test"]
    result = run_module("training.fit", *common, "--init", "scratch", "--distil", tiny_baseline, "--out", tmp_path / "run")
    assert "distil:" in result.stdout + result.stderr and "Kaggle training images keep" in result.stdout + result.stderr
    recipe = Classifier.from_pretrained(tmp_path / "run" / "weights").config.provenance["recipe"]
    assert recipe["distil"] == str(tiny_baseline) and recipe["distil_weight"] == 1.0
    wrong = run_module("training.fit", *common, "--image-size", "48", "--init", "scratch", "--distil", tiny_baseline,
                       "--out", tmp_path / "other", expect=2)
    assert "it needs baseline weights at 48 px" in wrong.stderr and "Traceback" not in wrong.stderr
