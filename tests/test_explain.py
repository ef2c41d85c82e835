"""Explanations: equal to pytorch-grad-cam's, every offered method, safe beside predictions in other
threads; and training.evaluate_cam scoring heatmaps against tumour boxes."""
from __future__ import annotations

import json
import threading

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from brain_tumor import Classifier, UsageError, create_model, model_config, preprocess
from brain_tumor.explain import METHODS, class_activation_maps, method_class, run_stages
from tests.helpers import EXAMPLES, SHIPPED_BASELINE, one_sentence, run_module
from training.evaluate_cam import choose_default

LIBRARY_LAYERS = {  # the same layers, named the way pytorch-grad-cam is given them on the whole model
    "layer4": lambda m: [m.layer4[-1]], "layer3": lambda m: [m.layer3[-1]], "layer3+layer4": lambda m: [m.layer3[-1], m.layer4[-1]],
    "block3": lambda m: [m.features[19]], "block2": lambda m: [m.features[12]], "gated": lambda m: [m.attention],
}


def library_maps(model, method: str, layer: str, batch, targets):
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    with torch.enable_grad(), method_class(method)(model=model, target_layers=LIBRARY_LAYERS[layer](model)) as cam:
        return cam(input_tensor=batch, targets=[ClassifierOutputTarget(t) for t in targets])


def test_explain_equals_pytorch_grad_cam_on_the_shipped_resnet(shipped_resnet):
    image = Image.open(EXAMPLES[0]).convert("RGB").resize((224, 224))  # at the model's size: no final resize
    for target in ("glioma", "meningioma"):
        ours = shipped_resnet.explain(image, target=target, method="gradcam", layer="layer4")
        batch = preprocess(image, shipped_resnet.config)[None]
        reference = library_maps(shipped_resnet.model, "gradcam", "layer4", batch, [shipped_resnet.classes.index(target)])[0]
        np.testing.assert_allclose(ours.heatmap, reference, atol=1e-5, rtol=0)
        assert reference.max() > 0.9  # a real map, not two empty ones


def test_the_shipped_gated_map_is_grad_cam_at_the_gated_layer(shipped_gated):
    """What the page shows for the gated model (the default backend, settings and target) is pytorch-grad-cam's
    Grad-CAM run on the whole shipped model at its attention pool; and that map is the gate times the class evidence."""
    assert shipped_gated.config.architecture.startswith("resnet50_gated") and shipped_gated.explain_settings() == ("gradcam", ("gated",))
    image = Image.open(EXAMPLES[0]).convert("RGB").resize((224, 224))  # at the model's size: no final resize
    model = shipped_gated.model
    for target in ("glioma", "meningioma"):
        ours = shipped_gated.explain(image, target=target)
        batch = preprocess(image, shipped_gated.config)[None]
        c = shipped_gated.classes.index(target)
        reference = library_maps(model, "gradcam", "gated", batch, [c])[0]
        np.testing.assert_allclose(ours.heatmap, reference, atol=1e-4, rtol=0)  # onnxruntime below the pool: ~1e-6
        assert reference.max() > 0.9  # a real map, not two empty ones
        with torch.no_grad():  # a · relu(w_c·F) / Σa, scaled to [0, 1], resized to the input, scaled again, as the library does
            low, high = run_stages(model, shipped_gated.config.architecture, batch, None, "layer4")
            gate = torch.sigmoid(model.attention.logits((low, high)))[0, 0]
            evidence = torch.einsum("khw,k->hw", F.interpolate(high, size=gate.shape)[0], model.fc.weight[c]).relu()
        cam = (gate * evidence).numpy()
        cam = cv2.resize((cam - cam.min()) / (cam.max() - cam.min()), (224, 224), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_allclose(ours.heatmap, (cam - cam.min()) / (cam.max() - cam.min()), atol=1e-3, rtol=0)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_at_the_gated_layer_matches_the_library(method):
    torch.manual_seed(0)
    model = create_model("resnet50_gated", image_size=64).eval()
    torch.nn.init.normal_(model.attention.gate.body[-1].weight, std=0.5)  # a gate that is not uniform
    batch = torch.stack([preprocess(path, model_config("resnet50_gated", image_size=64)) for path in EXAMPLES[:2]])
    ours, logits = class_activation_maps(model, "resnet50_gated", batch, [0, 3], method, ["gated"])
    np.testing.assert_allclose(ours, library_maps(model, method, "gated", batch, [0, 3]), atol=1e-5, rtol=0)
    with torch.no_grad():
        torch.testing.assert_close(logits, model(batch))


def test_the_mirror_gate_starts_as_the_plain_gate_and_reads_only_what_differs_across_the_midline():
    from brain_tumor.models import AttentionGate

    torch.manual_seed(0)
    plain, mirror = AttentionGate(8, 16, hidden=4), AttentionGate(8, 16, hidden=4, mirror=True)
    for gate in (plain, mirror):
        torch.nn.init.normal_(gate.body[-1].weight)
    missing = mirror.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert sorted(missing) == ["mirror.bias", "mirror.weight"]
    low, high = torch.randn(2, 8, 6, 6), torch.randn(2, 16, 3, 3)
    torch.testing.assert_close(mirror(low, high), plain(low, high))  # the new convolution starts at zero
    torch.nn.init.normal_(mirror.mirror.weight)
    assert not torch.allclose(mirror(low, high), plain(low, high))
    symmetric = (low + low.flip(-1), high + high.flip(-1))  # each side of the midline alike: nothing to compare
    torch.testing.assert_close(mirror(*symmetric), plain(*symmetric))


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("layer", ["layer3", "layer4", "layer3+layer4"])
def test_every_method_and_layer_matches_the_library(tiny_resnet, method, layer):
    classifier = Classifier.from_pretrained(tiny_resnet)
    batch = torch.stack([preprocess(path, classifier.config) for path in EXAMPLES[:2]])
    ours, logits = class_activation_maps(classifier.model, "resnet50", batch, [0, 3], method, layer.split("+"))
    np.testing.assert_allclose(ours, library_maps(classifier.model, method, layer, batch, [0, 3]), atol=1e-5, rtol=0)
    torch.testing.assert_close(logits, classifier.logits(batch))


@pytest.mark.parametrize("layer", ["block2", "block3"])
def test_the_shipped_baseline_matches_the_library(layer):
    classifier = Classifier.from_pretrained(SHIPPED_BASELINE)
    batch = preprocess(EXAMPLES[3], classifier.config)[None]
    ours, _ = class_activation_maps(classifier.model, "baseline", batch, [1], "gradcam", [layer])
    np.testing.assert_allclose(ours, library_maps(classifier.model, "gradcam", layer, batch, [1]), atol=1e-5, rtol=0)


def test_explaining_writes_nothing_into_the_model(tiny_resnet):
    classifier = Classifier.from_pretrained(tiny_resnet)
    before = {k: v.clone() for k, v in classifier.model.state_dict().items()}
    classifier.explain(EXAMPLES[0], layer="layer3+layer4")
    assert all(p.grad is None for p in classifier.model.parameters())
    assert all(torch.equal(before[k], v) for k, v in classifier.model.state_dict().items())
    assert not any(m._forward_hooks for m in classifier.model.modules())


def test_predictions_in_other_threads_are_untouched_by_explanations(tiny_resnet):
    classifier = Classifier.from_pretrained(tiny_resnet)
    images = [Image.open(p).convert("RGB") for p in EXAMPLES]
    expected_predictions = [classifier.predict(image).probabilities for image in images]
    expected_maps = [classifier.explain(image).heatmap for image in images]
    errors: list[str] = []

    def predict_loop():
        for _ in range(5):
            for image, expected in zip(images, expected_predictions):
                got = classifier.predict(image).probabilities
                if any(abs(got[c] - expected[c]) > 1e-5 for c in got):
                    errors.append("a prediction changed while explanations ran")

    def explain_loop():
        for _ in range(3):
            for image, expected in zip(images, expected_maps):
                if np.abs(classifier.explain(image).heatmap - expected).max() > 1e-5:
                    errors.append("a heatmap changed while predictions ran")

    threads = [threading.Thread(target=predict_loop), threading.Thread(target=predict_loop), threading.Thread(target=explain_loop),
               threading.Thread(target=explain_loop)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_unknown_method_or_layer_is_one_sentence(tiny_resnet):
    classifier = Classifier.from_pretrained(tiny_resnet)
    for kwargs, fragment in (({"method": "scorecam"}, "Unknown explanation method"), ({"layer": "layer9"}, "not a layer of resnet50")):
        with pytest.raises(UsageError) as caught:
            classifier.explain(EXAMPLES[0], **kwargs)
        assert fragment in str(caught.value) and one_sentence(str(caught.value))


def test_evaluate_cam_scores_heatmaps_against_boxes(tiny_resnet, boxes_folder, tmp_path):
    out = tmp_path / "cam"
    result = run_module("training.evaluate_cam", "--weights", tiny_resnet, "--boxes", boxes_folder, "--out", out, "--part", "all",
                        "--faithfulness-n", "4", "--cache-dir", "")
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("n", "pointing_game", "energy_ratio", "per_class", "prior", "faithfulness"):
        assert key in metrics
    assert metrics["n"] == 18 and set(metrics["per_class"]) == {"glioma", "meningioma", "pituitary"}
    assert 0 <= metrics["pointing_game"] <= 1 and metrics["energy_ratio"] >= 0
    assert {"pointing_game", "energy_ratio"} <= set(metrics["prior"])
    assert metrics["faithfulness"]["n"] == 4 and "gap" in metrics["faithfulness"]
    lo, hi = metrics["pointing_game_ci95"]
    assert lo <= metrics["pointing_game"] <= hi
    assert (out / "grid.png").stat().st_size > 10_000 and "pointing game" in (out / "summary.md").read_text()
    assert "pointing game" in result.stdout


def test_the_prior_points_inside_boxes_at_the_centre_of_the_head(tmp_path):
    from training.boxes import box_mask
    from training.localisation import energy_ratio, head_prior, pointing_hit

    yy, xx = np.mgrid[:96, :96]
    head = (((yy - 40) ** 2 + (xx - 56) ** 2) < 30 ** 2) * 120
    image = np.repeat(head[..., None], 3, axis=2).astype(np.uint8)
    prior = head_prior(image)
    assert np.unravel_index(prior.argmax(), prior.shape) == (40, 56) or abs(np.unravel_index(prior.argmax(), prior.shape)[0] - 40) <= 1
    centre, corner = box_mask((46, 30, 66, 50), 96), box_mask((0, 0, 20, 20), 96)
    assert pointing_hit(prior, centre) and not pointing_hit(prior, corner)
    assert energy_ratio(prior, centre) > 3 > energy_ratio(prior, corner)


def test_the_default_is_the_cheapest_explanation_within_the_best_ones_interval():
    def row(method, layer, pointing, low=0.0):
        return {"method": method, "layer": layer, "pointing_game": pointing, "pointing_game_ci95": [low, 1.0]}

    rows = [row("eigencam", "layer4", 0.5, 0.4), row("xgradcam", "layer3+layer4", 0.30, 0.25), row("hirescam", "layer3", 0.28),
            row("gradcam", "layer4", 0.26), row("layercam", "layer4", 0.20)]
    assert choose_default(rows, "resnet50")["method"] == "gradcam"  # EigenCAM is not offered; layer4 alone is cheapest
    rows[3]["pointing_game"] = 0.24  # outside the interval: a shorter backward pass does not excuse a worse map
    assert choose_default(rows, "resnet50")["method"] == "xgradcam"  # layer3 alone backpropagates through layer4 as well
    assert choose_default(rows[1:2], "resnet50")["layer"] == "layer3+layer4"


@pytest.mark.slow  # every method × layer
def test_compare_ranks_every_method_and_refuses_to_choose_on_the_evaluation_part(tiny_resnet, boxes_folder, tmp_path):
    import shutil

    weights = tmp_path / "w"
    shutil.copytree(tiny_resnet, weights)
    refused = run_module("training.evaluate_cam", "--weights", weights, "--boxes", boxes_folder, "--out", tmp_path / "a",
                         "--compare", "--write-config", "--part", "eval", "--cache-dir", "", expect=2)
    assert "--part train" in refused.stderr and "Traceback" not in refused.stderr
    run_module("training.evaluate_cam", "--weights", weights, "--boxes", boxes_folder, "--out", tmp_path / "b", "--compare",
               "--write-config", "--part", "train", "--faithfulness-n", "0", "--cache-dir", "")
    rows = json.loads((tmp_path / "b" / "compare.json").read_text())["rows"]
    assert len(rows) == len(METHODS) * 3  # every method at layer3, layer4 and both
    assert [r["pointing_game"] for r in rows] == sorted((r["pointing_game"] for r in rows), reverse=True)
    best = json.loads((tmp_path / "b" / "compare.json").read_text())["best"]
    assert best == {k: choose_default(rows, "resnet50")[k] for k in ("method", "layer")}
    chosen = Classifier.from_pretrained(weights)  # still loads; the default now comes from the comparison
    assert chosen.config.explanation["method"] == best["method"] and chosen.config.explanation["layer"] == best["layer"]
    assert chosen.explain(EXAMPLES[0]).method == best["method"]
    assert chosen.config.metrics["localisation_train"]["n"] == 9
