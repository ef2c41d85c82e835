"""Other formats: timm folders and ONNX files with the same outputs, and the onnxruntime backend."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from brain_tumor import Classifier, preprocess
from tests.helpers import EXAMPLES, colour_photo, one_sentence, run_module, save_tiny_model


@pytest.mark.slow  # a timm model built and traced (7 s)
def test_a_timm_export_gives_identical_logits(tiny_resnet, tmp_path):
    timm = pytest.importorskip("timm")
    out = tmp_path / "timm"
    run_module("brain_tumor.export", "--weights", tiny_resnet, "--format", "timm", "--out", out)
    model = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
    classifier = Classifier.from_pretrained(tiny_resnet, backend="torch")
    batch = torch.stack([preprocess(path, classifier.config) for path in EXAMPLES])
    with torch.no_grad():
        torch.testing.assert_close(model(batch), classifier.logits(batch), rtol=0, atol=0)
    assert model.pretrained_cfg["input_size"] == (3, 64, 64) and tuple(model.pretrained_cfg["mean"]) == classifier.config.mean
    extra = json.loads((out / "brain_tumor.json").read_text())
    assert extra["temperature"] == classifier.config.temperature and extra["classes"] == list(classifier.classes)


def test_a_float16_export_halves_the_folder_and_keeps_the_answers(tiny_resnet, tmp_path):
    from safetensors import safe_open

    out = tmp_path / "half"
    run_module("brain_tumor.export", "--weights", tiny_resnet, "--format", "float16", "--out", out)

    def size(folder):
        return sum(p.stat().st_size for p in folder.glob("*.safetensors"))

    assert size(out) < 0.6 * size(tiny_resnet)
    with safe_open(str(next(out.glob("*.safetensors"))), "pt") as shard:
        dtypes = {shard.get_tensor(k).dtype for k in shard.keys()}
    assert torch.float16 in dtypes and torch.float32 not in dtypes
    full, half = Classifier.from_pretrained(tiny_resnet, backend="torch"), Classifier.from_pretrained(out, backend="torch")
    assert half.config.weights_dtype == "float16" and half.config.temperature == full.config.temperature
    assert half.version != full.version
    batch = torch.stack([preprocess(path, full.config) for path in EXAMPLES])
    torch.testing.assert_close(half.logits(batch), full.logits(batch), rtol=0.02, atol=0.02)


def test_the_baseline_has_no_timm_form(tiny_baseline, tmp_path):
    result = run_module("brain_tumor.export", "--weights", tiny_baseline, "--format", "timm", "--out", tmp_path / "t", expect=2)
    assert "timm has no baseline architecture" in result.stderr and one_sentence(result.stderr.strip()[len("error: "):])


@pytest.mark.slow  # two exports
def test_the_gated_model_goes_to_onnx_not_timm(tmp_path):
    """The attention-pooled ResNet-50: timm cannot hold it (one sentence); onnxruntime gives the same answer and map."""
    weights = save_tiny_model(tmp_path / "gated", "resnet50_gated", 64)
    result = run_module("brain_tumor.export", "--weights", weights, "--format", "timm", "--out", tmp_path / "t", expect=2)
    message = result.stderr.strip()[len("error: "):]
    assert "timm has no ResNet-50 with an attention pool" in message and "--format onnx" in message and one_sentence(message)
    model = Classifier.from_pretrained(weights, backend="torch")
    torch.nn.init.normal_(model.model.attention.gate.body[-1].weight, std=0.5)  # a gate that is not uniform
    model.save_pretrained(weights)  # new weights, so a new version (the ONNX cache is keyed by it)
    plain, fast = Classifier.from_pretrained(weights, backend="torch"), Classifier.from_pretrained(weights, backend="onnx")
    for path in EXAMPLES[:2]:
        a, b = plain.explain(path), fast.explain(path)
        np.testing.assert_allclose(list(a.prediction.probabilities.values()), list(b.prediction.probabilities.values()), atol=1e-5)
        np.testing.assert_allclose(a.heatmap, b.heatmap, atol=1e-4)
        assert a.layer == b.layer == "gated"


def onnx_files_run_any_batch_size(weights, path, int8: bool):
    onnxruntime = pytest.importorskip("onnxruntime")
    run_module("brain_tumor.export", "--weights", weights, "--format", "onnx", "--out", path, *(["--int8"] if int8 else []))
    classifier = Classifier.from_pretrained(weights, backend="torch")
    batch = torch.stack([preprocess(p, classifier.config) for p in EXAMPLES[:3]])
    for model_file in (path, path.with_suffix(".int8.onnx")) if int8 else (path,):
        session = onnxruntime.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
        for n in (1, 3):
            logits = session.run(["logits"], {"pixels": batch[:n].numpy()})[0]
            assert logits.shape == (n, 4)
    np.testing.assert_allclose(session_logits(path, batch), classifier.logits(batch).numpy(), atol=1e-4)


@pytest.mark.slow  # an export run at several batch sizes
def test_an_onnx_file_runs_any_batch_size(tiny_resnet, tmp_path):
    onnx_files_run_any_batch_size(tiny_resnet, tmp_path / "m.onnx", int8=False)


@pytest.mark.slow  # onnxruntime's quantisation pre-processing takes a while
def test_an_int8_onnx_file_runs_any_batch_size(tiny_resnet, tmp_path):
    onnx_files_run_any_batch_size(tiny_resnet, tmp_path / "m.onnx", int8=True)


def session_logits(path, batch):
    import onnxruntime

    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(["logits"], {"pixels": batch.numpy()})[0]


def test_the_onnx_backend_predicts_and_explains_like_pytorch(shipped_resnet):
    pytest.importorskip("onnxruntime")
    fast = Classifier.from_pretrained(shipped_resnet.source, backend="onnx")
    torch_only = Classifier.from_pretrained(shipped_resnet.source, backend="torch")
    inputs = [*EXAMPLES, colour_photo()]
    for ours, reference in zip(fast.predict_batch(inputs), torch_only.predict_batch(inputs)):
        assert ours.label == reference.label and ours.ood_reasons == reference.ood_reasons
        assert max(abs(ours.probabilities[c] - reference.probabilities[c]) for c in ours.probabilities) < 1e-4
    assert fast.predict(colour_photo()).out_of_distribution
    for layer in ("layer4", "layer3+layer4"):
        np.testing.assert_allclose(fast.explain(EXAMPLES[0], layer=layer).heatmap, torch_only.explain(EXAMPLES[0], layer=layer).heatmap, atol=1e-5)
