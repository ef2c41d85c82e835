"""The real app: `python app.py` on a free localhost port, driven by gradio_client and a browser."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import EXAMPLES, PYTHON, ROOT
from tests.test_hardening import colour_photo
from tests.test_images import png_header_only

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def upload_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("gradio-uploads")


@pytest.fixture(scope="module")
def server(upload_dir):
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_TEMP_DIR": str(upload_dir)}
    process = subprocess.Popen([PYTHON, "app.py"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail("app.py exited during start-up:\n" + process.stdout.read()[-3000:])
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("app.py did not answer within 120 s")
    yield url
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="module")
def client(server):
    return Client(server, verbose=False)


def predict(client, path, target="Predicted class", opacity=0.5, model="resnet50"):
    return client.predict(handle_file(str(path)), target, opacity, model, api_name="/predict")


def test_every_example_gives_four_confidences_and_an_overlay(client):
    for path in EXAMPLES:
        label, overlay = predict(client, path)
        confidences = {c["label"]: c["confidence"] for c in label["confidences"]}
        assert set(confidences) == {"Glioma", "Meningioma", "No tumour", "Pituitary tumour"}
        assert sum(confidences.values()) == pytest.approx(1.0, abs=1e-4)
        assert label["label"] == max(confidences, key=confidences.get)
        assert Image.open(overlay).size == Image.open(path).size


def test_overlay_matches_an_input_of_another_size(client, tmp_path):
    path = tmp_path / "wide.png"
    Image.open(EXAMPLES[0]).resize((320, 250)).save(path)
    _, overlay = predict(client, path, target="Meningioma", opacity=0.3)
    assert Image.open(overlay).size == (320, 250)


def test_bad_inputs_get_one_sentence_and_the_server_keeps_serving(client, tmp_path):
    cases = {
        "notes.txt": (b"definitely not an image", "not an image"),
        "empty.jpg": (b"", "empty"),
        "cut.jpg": (EXAMPLES[0].read_bytes()[:1500], "truncated or corrupt"),
        "huge.png": (png_header_only(9000, 9000), "megapixel limit"),
    }
    for name, (data, fragment) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(Exception) as caught:
            predict(client, path)
        assert fragment in str(caught.value), (name, str(caught.value))
        label, _ = predict(client, EXAMPLES[2])  # the next good request succeeds
        assert label["label"]


def test_every_user_input_through_the_app(client, tmp_path):
    from tests.inputs import user_inputs

    for name, data, expected in user_inputs():
        path = tmp_path / name
        path.write_bytes(data)
        if expected == "ok":
            label, overlay = predict(client, path)
            assert label["label"] in ("Glioma", "Meningioma", "No tumour", "Pituitary tumour"), name
        else:
            with pytest.raises(Exception) as caught:
                predict(client, path)
            assert expected in str(caught.value), (name, str(caught.value))


def test_uploads_are_deleted_after_the_response(client, upload_dir, tmp_path):
    import hashlib

    path = tmp_path / "private-scan.png"
    Image.open(EXAMPLES[3]).rotate(7).save(path)  # content no other test uploads
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    predict(client, path)
    left = [p for p in upload_dir.rglob("*") if p.is_file() and hashlib.sha256(p.read_bytes()).hexdigest() == digest]
    assert left == []
    # Gallery examples stay servable.
    assert any(p.name == EXAMPLES[0].name for p in upload_dir.rglob("*.jpg"))


def test_eight_concurrent_clients_get_no_errors(server):
    from concurrent.futures import ThreadPoolExecutor

    def session(index: int) -> int:
        own = Client(server, verbose=False)
        for i in range(3):
            label, _ = predict(own, EXAMPLES[(index + i) % len(EXAMPLES)])
            assert label["label"]
        return 3

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(session, range(8))) == 24


def test_a_path_outside_the_uploads_is_refused(server):
    payload = {"data": [{"path": str(ROOT / "weights" / "resnet50" / "config.json"), "meta": {"_type": "gradio.FileData"}},
                        "Predicted class", 0.5, "resnet50"]}
    request = urllib.request.Request(server + "gradio_api/call/predict", data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    event_id = json.loads(urllib.request.urlopen(request, timeout=30).read())["event_id"]
    stream = urllib.request.urlopen(f"{server}gradio_api/call/predict/{event_id}", timeout=60).read().decode()
    assert "event: error" in stream and "config.json" not in stream.replace("not an upload", "")


def test_page_names_the_model_and_says_it_is_not_a_medical_device(server):
    config = json.loads(urllib.request.urlopen(server + "config", timeout=30).read())
    text = json.dumps(config)
    assert "not a medical device" in text
    assert "ResNet-50" in text and "no training twin" in text


@pytest.mark.skipif(not Path(CHROMIUM).exists() and not os.environ.get("CI"),
                    reason="Debian's chromium is not installed (apt-get install chromium); .ci/run installs it, and in CI this test never skips")
def test_browser_upload_shows_label_and_overlay(server):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        page.goto(server, wait_until="load")
        page.locator("input[type=file]").first.set_input_files(str(EXAMPLES[0]))
        label = page.locator("#confidences [data-testid=label-output-value]")
        label.wait_for(timeout=60_000)
        assert "Glioma" in label.inner_text()
        overlay = page.locator("#overlay img")
        overlay.wait_for(timeout=60_000)
        assert page.evaluate("document.querySelector('#overlay img').naturalWidth") == 224
        assert "not a medical device" in page.locator("#notice").inner_text()
        page.screenshot(path=str(ARTIFACTS / "app-screenshot.png"), full_page=True)
        assert not page.locator("#ood-warning").is_visible()

        # Clicking a gallery example analyses it.
        page.locator("button.gallery-item").nth(2).click()  # meningioma_1.jpg
        page.wait_for_function("document.querySelector('#confidences [data-testid=label-output-value]')?.innerText.includes('Meningioma')", timeout=60_000)

        # A colour photo is answered, with a visible warning.
        photo = ARTIFACTS / "colour-photo.png"
        colour_photo().save(photo)
        page.locator("input[type=file]").first.set_input_files(str(photo))
        page.locator("#ood-warning").wait_for(state="visible", timeout=60_000)
        assert "does not look like a brain MRI slice" in page.locator("#ood-warning").inner_text()
        page.screenshot(path=str(ARTIFACTS / "app-ood-warning.png"), full_page=True)

        # A DICOM file dropped on the .dcm box is windowed, shown and analysed.
        from tests.test_dicom import make_dicom

        dcm = ARTIFACTS / "slice.dcm"
        dcm.write_bytes(make_dicom(np.asarray(Image.open(EXAMPLES[6]).convert("L"), np.uint16) * 16))
        page.locator("input[type=file]").nth(1).set_input_files(str(dcm))
        page.locator("#ood-warning").wait_for(state="hidden", timeout=60_000)
        page.wait_for_function("document.querySelector('#confidences [data-testid=label-output-value]')?.innerText.includes('Pituitary')", timeout=60_000)
        browser.close()
    assert (ARTIFACTS / "app-screenshot.png").stat().st_size > 20_000


def test_space_deploy_uploads_the_app_with_cpu_torch(monkeypatch):
    import sys as _sys

    import huggingface_hub

    _sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import deploy_space
    finally:
        _sys.path.pop(0)
    uploaded = {}

    class FakeApi:
        def create_repo(self, repo_id, **kwargs):
            uploaded["create"] = (repo_id, kwargs)

        def upload_folder(self, folder_path, **kwargs):
            folder = Path(folder_path)
            uploaded["files"] = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
            uploaded["requirements"] = (folder / "requirements.txt").read_text()
            uploaded["readme"] = (folder / "README.md").read_text()

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    assert deploy_space.main(["--space-id", "someone/brain-tumor", "--model-id", "someone/brain-tumor-resnet50"]) == 0
    assert uploaded["create"][1]["space_sdk"] == "gradio" and uploaded["create"][1]["repo_type"] == "space"
    assert {"app.py", "README.md", "weights/resnet50/config.json", "brain_tumor/classifier.py"} <= set(uploaded["files"])
    assert not any(f.startswith(("tests/", "training/", ".venv")) for f in uploaded["files"])
    assert "download.pytorch.org/whl/cpu" in uploaded["requirements"] and "torch==2.14.1+cpu" in uploaded["requirements"]
    assert "sdk: gradio" in uploaded["readme"] and "- someone/brain-tumor-resnet50" in uploaded["readme"]


def test_safe_launch_defaults(monkeypatch):
    import gradio as gr

    import app

    captured = {}
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kwargs: captured.update(kwargs))
    from brain_tumor import Classifier

    demo = app.build_app({"resnet50": Classifier.from_pretrained(ROOT / "weights" / "resnet50")})
    app.launch(demo)
    assert captured["share"] is False and captured["run_history"] is False
    assert captured["allowed_paths"] == [str(ROOT / "examples")]
    assert captured["max_file_size"] == app.MAX_FILE_SIZE
    assert demo.analytics_enabled is False
    assert demo.delete_cache == (300, 900)
    assert demo._queue.max_size == app.QUEUE_SIZE
    assert "gr.load" not in (ROOT / "app.py").read_text()


def test_cpu_bench_prints_latency_table(tiny_baseline):
    import subprocess

    result = subprocess.run([PYTHON, "-m", "brain_tumor.bench", "--weights", str(tiny_baseline), "--repeats", "3"],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith(("predict", "explain"))]
    assert [(r[0], r[1]) for r in rows] == [("predict", "1"), ("predict", "16"), ("explain", "1"), ("explain", "16")]
    assert all(float(r[2]) > 0 and float(r[3]) >= float(r[2]) for r in rows)
