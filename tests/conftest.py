"""Fixtures: small generated datasets and models, and the shipped weights. Helpers live in tests/helpers.py."""
from __future__ import annotations

import pytest

from tests.helpers import SHIPPED_GATED, SHIPPED_RESNET, make_boxes_folder, make_kaggle_dataset, save_tiny_model


@pytest.fixture(scope="session")
def kaggle_dataset(tmp_path_factory):
    return make_kaggle_dataset(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def boxes_folder(tmp_path_factory):
    return make_boxes_folder(tmp_path_factory.mktemp("boxes"))


@pytest.fixture(scope="session")
def tiny_baseline(tmp_path_factory):
    """An untrained baseline CNN at 32 px, saved as a weights folder."""
    return save_tiny_model(tmp_path_factory.mktemp("weights") / "baseline")


@pytest.fixture(scope="session")
def tiny_resnet(tmp_path_factory):
    """An untrained ResNet-50 at 64 px, saved as a weights folder."""
    return save_tiny_model(tmp_path_factory.mktemp("weights") / "resnet50", "resnet50", 64)


@pytest.fixture(scope="session")
def shipped_resnet():
    from brain_tumor import Classifier

    return Classifier.from_pretrained(SHIPPED_RESNET)


@pytest.fixture(scope="session")
def shipped_gated():
    from brain_tumor import Classifier

    return Classifier.from_pretrained(SHIPPED_GATED)


@pytest.fixture(scope="session")
def app_server(tmp_path_factory):
    """`python app.py` with the shipped weights on a free localhost port: (url, its upload folder)."""
    from benchmarks.serve import serve

    uploads = tmp_path_factory.mktemp("gradio-uploads")
    with serve(["app.py"], env={"GRADIO_TEMP_DIR": str(uploads)}, timeout=900) as (url, _):
        yield url, uploads
