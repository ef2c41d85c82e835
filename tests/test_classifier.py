"""Classifier, weights folders, the Hub path (faked) and the model registry."""
from __future__ import annotations

import json
import urllib.error

import numpy as np
import pytest
import torch
from PIL import Image

from brain_tumor import CLASSES, Classifier, InvalidImageError, PretrainedWeightsError, UsageError, UserError, WeightsError, create_model, model_config, normalize_class_name, preprocess
from brain_tumor import weights as weights_module
from tests.helpers import EXAMPLES


def test_predict_on_every_example_gives_four_probabilities(shipped_resnet):
    predictions = shipped_resnet.predict_batch(EXAMPLES)
    for prediction in predictions:
        assert list(prediction.probabilities) == list(CLASSES)
        assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert prediction.label == max(prediction.probabilities, key=prediction.probabilities.get)
    single = shipped_resnet.predict(EXAMPLES[0])
    assert single.label == predictions[0].label
    assert list(single.probabilities.values()) == pytest.approx(list(predictions[0].probabilities.values()), abs=1e-5)
    # The shipped model is right on most of the gallery (its files are named by true class).
    right = sum(p.label == path.stem.rsplit("_", 1)[0] for p, path in zip(predictions, EXAMPLES))
    assert right >= 6


def test_temperature_from_the_config_is_applied(shipped_resnet):
    x = preprocess(EXAMPLES[0], shipped_resnet.config)[None]
    logits = shipped_resnet.logits(x)[0]
    expected = torch.softmax(logits / shipped_resnet.config.temperature, 0)
    got = shipped_resnet.predict(EXAMPLES[0]).probabilities
    np.testing.assert_allclose(list(got.values()), expected.numpy(), atol=1e-6)
    assert shipped_resnet.config.temperature != 1.0


def test_the_mirror_average_is_the_mean_of_both_views_wherever_logits_are_made(tiny_baseline):
    from brain_tumor.preprocess import normalize
    from training.report import predict_logits
    one, both = Classifier.from_pretrained(tiny_baseline), Classifier.from_pretrained(tiny_baseline)
    both.config.mirror_average = True
    images = torch.randint(0, 256, (3, 3, one.config.image_size, one.config.image_size), generator=torch.Generator().manual_seed(0),
                           dtype=torch.uint8)
    x = normalize(images, one.config.mean, one.config.std)
    expected = (one.logits(x) + one.logits(x.flip(-1))) / 2
    torch.testing.assert_close(both.logits(x), expected)
    assert not torch.allclose(both.logits(x), one.logits(x), atol=1e-4)  # a random network is not symmetric
    torch.testing.assert_close(predict_logits(both.model, images, both.config), expected, atol=1e-5, rtol=1e-4)  # training's batches
    explained, predicted = both.explain(EXAMPLES[0]), both.predict(EXAMPLES[0])
    assert explained.prediction.probabilities == pytest.approx(predicted.probabilities, abs=1e-5)  # the page's answer is predict's
    assert explained.target == predicted.label
    # Where the mirror image turns the answer (here forced: a large score for pituitary in every pass but the map's own),
    # the map is drawn again for the class the answer names.
    one_view = both._one_view
    both._one_view = lambda batch: one_view(batch) + torch.tensor([0.0, 0.0, 0.0, 50.0])
    turned = both.explain(EXAMPLES[0])
    assert turned.target == turned.prediction.label == both.predict(EXAMPLES[0]).label == "pituitary" != predicted.label
    np.testing.assert_allclose(turned.heatmap, both.explain(EXAMPLES[0], target="pituitary").heatmap)


def test_gradcam_heatmap_shape_range_and_target(shipped_resnet):
    image = Image.open(EXAMPLES[0]).resize((300, 260))  # not the model's 224: the heatmap follows the input
    explanation = shipped_resnet.explain(image)
    assert explanation.heatmap.shape == (260, 300)
    assert explanation.heatmap.min() >= 0 and explanation.heatmap.max() <= 1 and explanation.heatmap.max() > 0.5
    assert explanation.target == explanation.prediction.label
    assert explanation.overlay.size == (300, 260)
    other = next(c for c in CLASSES if c != explanation.target)
    assert np.abs(shipped_resnet.explain(image, target=other).heatmap - explanation.heatmap).mean() > 0.02
    with pytest.raises(UsageError, match="not a class"):
        shipped_resnet.explain(image, target="astrocytoma")


def test_overlay_opacity_blends(shipped_resnet):
    explanation = shipped_resnet.explain(EXAMPLES[1])
    plain = np.asarray(explanation.overlay_with(0.0)).astype(int)
    np.testing.assert_allclose(plain, np.asarray(explanation.image), atol=1)
    assert np.abs(np.asarray(explanation.overlay_with(0.8)).astype(int) - plain).mean() > 10


def test_baseline_explains_too(tiny_baseline):
    explanation = Classifier.from_pretrained(tiny_baseline).explain(EXAMPLES[0])
    assert explanation.heatmap.shape == (224, 224)


@pytest.mark.parametrize("architecture, dtype", [("baseline", "float32"), ("resnet50", "float16")])
def test_save_load_round_trip_gives_identical_logits(tmp_path, architecture, dtype):
    torch.manual_seed(0)
    model = create_model(architecture, image_size=64)
    config = model_config(architecture, image_size=64, weights_dtype=dtype)
    if dtype == "float16":  # what is saved is the half-precision model: compare against that
        model.load_state_dict({k: v.half().float() if v.is_floating_point() else v for k, v in model.state_dict().items()})
    original = Classifier(model, config)
    original.save_pretrained(tmp_path / "w")
    shards = sorted(p.name for p in (tmp_path / "w").glob("*.safetensors"))
    assert all((tmp_path / "w" / name).stat().st_size < 15_000_000 for name in shards)
    assert set(json.loads((tmp_path / "w" / "config.json").read_text())["weights_sha256"]) == set(shards)
    assert (tmp_path / "w" / "README.md").read_text().startswith("---")
    loaded = Classifier.from_pretrained(tmp_path / "w", backend="torch")  # same engine as `original`
    batch = torch.stack([preprocess(path, config) for path in EXAMPLES[:3]])
    torch.testing.assert_close(loaded.logits(batch), original.logits(batch), rtol=0, atol=0)


def test_tampered_shard_is_refused(tmp_path, tiny_baseline):
    import shutil

    folder = tmp_path / "w"
    shutil.copytree(tiny_baseline, folder)
    shard = next(folder.glob("*.safetensors"))
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="does not match the sha256"):
        Classifier.from_pretrained(folder)


def test_missing_weights_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setattr(weights_module, "PROJECT_WEIGHTS", tmp_path / "empty")
    monkeypatch.delenv("BRAIN_TUMOR_WEIGHTS", raising=False)
    with pytest.raises(WeightsError) as caught:
        Classifier.from_pretrained()
    message = str(caught.value)
    assert "No model weights found" in message and "training.fit" in message and "\n" not in message
    with pytest.raises(WeightsError, match="does not exist"):
        Classifier.from_pretrained(tmp_path / "nowhere")
    with pytest.raises(WeightsError, match="no config.json"):
        Classifier.from_pretrained(tmp_path)


def test_default_weights_order(tmp_path, monkeypatch, tiny_baseline):
    import shutil

    shutil.copytree(tiny_baseline, tmp_path / "baseline")
    monkeypatch.setattr(weights_module, "PROJECT_WEIGHTS", tmp_path)
    monkeypatch.delenv("BRAIN_TUMOR_WEIGHTS", raising=False)
    assert weights_module.resolve_weights() == tmp_path / "baseline"
    shutil.copytree(tiny_baseline, tmp_path / "resnet50")
    assert weights_module.resolve_weights() == tmp_path / "resnet50"
    monkeypatch.setenv("BRAIN_TUMOR_WEIGHTS", str(tiny_baseline))
    assert weights_module.resolve_weights() == tiny_baseline


def test_hub_id_is_downloaded_at_the_pinned_revision(monkeypatch, tiny_baseline):
    import huggingface_hub

    calls = []

    def fake_snapshot_download(repo_id, **kwargs):
        calls.append((repo_id, kwargs))
        return str(tiny_baseline)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    model = Classifier.from_pretrained("someone/brain-tumor-baseline", revision="abc123", token="hf_x", cache_dir="/tmp/hub",
                                       local_files_only=True)
    assert model.config.architecture == "baseline"
    repo_id, kwargs = calls[0]
    assert repo_id == "someone/brain-tumor-baseline" and kwargs["revision"] == "abc123"
    assert kwargs["token"] == "hf_x" and kwargs["cache_dir"] == "/tmp/hub" and kwargs["local_files_only"] is True
    assert "*.safetensors" in kwargs["allow_patterns"] and not any(p.endswith((".bin", ".pt", ".pth")) for p in kwargs["allow_patterns"])


def test_hub_offline_is_one_sentence(monkeypatch, tmp_path):
    # The real client, with HF_HUB_OFFLINE set and an empty cache: no network is touched.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import importlib

    import huggingface_hub.constants

    importlib.reload(huggingface_hub.constants)
    try:
        with pytest.raises(WeightsError) as caught:
            Classifier.from_pretrained("someone/brain-tumor-resnet50")
    finally:
        monkeypatch.undo()
        importlib.reload(huggingface_hub.constants)
    assert "offline or unreachable" in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "error_name, fragment",
    [("RepositoryNotFoundError", "does not exist or is private"), ("RevisionNotFoundError", "has no revision"), ("GatedRepoError", "gated")],
)
def test_hub_errors_are_one_sentence(monkeypatch, error_name, fragment):
    import huggingface_hub
    import huggingface_hub.errors as errors

    error_type = getattr(errors, error_name)

    def fake_snapshot_download(repo_id, **kwargs):
        raise error_type.__new__(error_type)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    with pytest.raises(WeightsError, match=fragment):
        Classifier.from_pretrained("someone/model", revision="v9")


def test_imagenet_init_without_network_names_scratch(monkeypatch):
    import torchvision.models._api as api

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(api, "load_state_dict_from_url", no_network)
    with pytest.raises(PretrainedWeightsError) as caught:
        create_model("resnet50", init="imagenet")
    assert "--init scratch" in str(caught.value)


def test_imagenet_init_with_network_loads_those_weights(monkeypatch):
    import torchvision
    import torchvision.models._api as api

    reference = torchvision.models.resnet50().state_dict()
    monkeypatch.setattr(api, "load_state_dict_from_url", lambda *a, **k: reference)
    model = create_model("resnet50", init="imagenet")
    torch.testing.assert_close(model.conv1.weight, reference["conv1.weight"])
    assert model.fc.out_features == 4


def test_registry_builds_both_models_with_four_outputs():
    x = torch.zeros(2, 3, 64, 64)
    for name in ("resnet50", "baseline"):
        model = create_model(name, image_size=64).eval()
        assert model(x).shape == (2, 4)
    baseline = create_model("baseline", image_size=64)
    convs = [m for m in baseline.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 16, 32, 32, 64, 64]
    assert create_model("resnet50", head="mlp").fc[0].out_features == 512
    with pytest.raises(ValueError, match="Unknown model"):
        create_model("vgg16")


@pytest.mark.parametrize("name, expected", [("glioma_tumor", "glioma"), ("No Tumor", "notumor"), ("no_tumor", "notumor"),
                                            ("Pituitary", "pituitary"), ("meningioma_tumor", "meningioma"), ("notumor", "notumor")])
def test_class_name_normaliser(name, expected):
    assert normalize_class_name(name) == expected


def test_unknown_class_name_is_refused():
    with pytest.raises(ValueError, match="not a known class"):
        normalize_class_name("astrocytoma")


def test_every_user_error_shares_one_base_class():
    assert issubclass(InvalidImageError, ValueError) and issubclass(InvalidImageError, UserError)
    for error in (WeightsError, PretrainedWeightsError, UsageError):
        assert issubclass(error, UserError)


def test_a_config_takes_its_input_spec_from_the_registry():
    assert model_config("baseline").mean == (0.5, 0.5, 0.5)
    assert model_config("resnet50").mean == (0.485, 0.456, 0.406)
    assert model_config("resnet50", image_size=96).image_size == 96


def test_the_dilated_resnet_keeps_a_finer_map_and_loads_resnet_weights():
    plain, dilated = create_model("resnet50").eval(), create_model("resnet50_dilated").eval()
    dilated.load_state_dict(plain.state_dict())
    x = torch.zeros(1, 1024, 14, 14)
    assert plain.layer4(x).shape[-1] == 7 and dilated.layer4(x).shape[-1] == 14
