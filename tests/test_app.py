"""The live app through its API (gradio_client, raw HTTP) and its MCP tool; launch settings; the latency benchmark."""
from __future__ import annotations

import asyncio
import base64
import csv
import hashlib
import json
import re
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image

from brain_tumor import CLASSES
from tests.helpers import (EXAMPLES, ROOT, SERIES_SLICES, bad_scans, make_series, mni_template, png_header_only, run_module,
                           save_tiny_model, user_inputs)

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402

DISPLAY = {"Glioma", "Meningioma", "No tumour", "Pituitary tumour"}


@pytest.fixture(scope="module")
def client(app_server):
    return Client(app_server[0], verbose=False)


def classify(client, path):
    return client.predict(handle_file(str(path)), api_name="/classify")


def test_classify_gives_the_whole_answer_for_a_real_slice(client):
    answer, overlay = classify(client, EXAMPLES[0])
    assert set(answer) >= {"label", "probabilities", "out_of_distribution", "warning", "model"}
    assert set(answer["probabilities"]) == set(CLASSES) and sum(answer["probabilities"].values()) == pytest.approx(1, abs=1e-5)
    assert answer["label"] == max(answer["probabilities"], key=answer["probabilities"].get) == "glioma"
    assert answer["out_of_distribution"] is False and answer["warning"] is None and answer["model"] == "resnet50"
    assert Image.open(overlay).size == Image.open(EXAMPLES[0]).size


def test_classify_warns_on_a_blank_image(client, tmp_path):
    path = tmp_path / "white.png"
    Image.new("RGB", (256, 256), "white").save(path)
    answer, _ = classify(client, path)
    assert answer["out_of_distribution"] is True
    assert answer["warning"].startswith("This does not look like a brain MRI slice")


def test_classify_batch_gives_a_row_per_file_unreadable_ones_included(client, tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    archive = tmp_path / "more.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.write(EXAMPLES[4], "x/no.jpg")
        handle.writestr("x/empty.png", b"")
    rows, csv_path = client.predict([handle_file(str(EXAMPLES[2])), handle_file(str(bad)), handle_file(str(archive))],
                                    api_name="/classify_batch")
    by_file = {r["file"]: r for r in rows}
    assert set(by_file) == {EXAMPLES[2].name, "notes.jpg", "more.zip/x/no.jpg", "more.zip/x/empty.png"}
    assert by_file[EXAMPLES[2].name]["label"] == "meningioma" and by_file["more.zip/x/no.jpg"]["label"] == "notumor"
    assert "not an image" in by_file["notes.jpg"]["error"] and by_file["notes.jpg"]["label"] is None
    assert "is empty" in by_file["more.zip/x/empty.png"]["error"]
    table = list(csv.DictReader(open(csv_path)))
    assert [r["file"] for r in table] == [r["file"] for r in rows] and set(CLASSES) <= set(table[0])


def test_the_older_predict_endpoint_still_works_and_carries_the_warning(client, tmp_path):
    confidences, overlay, warning = client.predict(handle_file(str(EXAMPLES[2])), "Predicted class", 0.5, "resnet50", api_name="/predict")
    assert confidences["label"] == "Meningioma" and {c["label"] for c in confidences["confidences"]} == DISPLAY and warning == ""
    blank = tmp_path / "black.png"
    Image.new("RGB", (200, 200), (128, 128, 128)).save(blank)
    assert client.predict(handle_file(str(blank)), "Glioma", 0.3, "resnet50", api_name="/predict")[2].startswith("This does not look")


def test_the_older_predict_endpoint_answers_the_old_one_argument_call(client):
    confidences, overlay, warning = client.predict(handle_file(str(EXAMPLES[0])), api_name="/predict")
    assert confidences["label"] == "Glioma" and warning == "" and Image.open(overlay).size == Image.open(EXAMPLES[0]).size


def test_classify_scan_answers_a_volume_and_a_zipped_series(client, tmp_path):
    answer, overlay = client.predict([handle_file(str(mni_template()))], api_name="/classify_scan")
    (scan,) = answer["scans"]
    assert scan["kind"] == "NIfTI volume" and scan["slices"] == 189 and len(scan["per_slice"]) == 189 and answer["unread"] == []
    run, key = scan["summary"]["run"], scan["key_slice"]["slice"]
    assert (run[0] <= key <= run[1]) if run else not scan["per_slice"][key]["out_of_distribution"]
    assert "Checked on held-out scans" in scan["warning"] and "not a diagnosis" in scan["warning"]  # the default model's chosen rule
    assert scan["summary"]["rule"].startswith("A tumour class is named")
    assert Image.open(overlay).size == (197, 233)
    archive = tmp_path / "series.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for name, data in make_series(SERIES_SLICES):
            handle.writestr(f"patient/{name}", data)
    answer, _ = client.predict([handle_file(str(archive))], api_name="/classify_scan")
    (scan,) = answer["scans"]
    assert scan["kind"] == "DICOM series" and scan["slices"] == 6 and scan["scan"].startswith("series.zip/patient: series 3")


@pytest.mark.slow  # nine uploads through the queue
def test_every_bad_scan_gets_its_sentence_through_the_api(client, tmp_path):
    for case, files, fragment in bad_scans():
        paths = []
        for name, data in files:
            (tmp_path / name).write_bytes(data)
            paths.append(handle_file(str(tmp_path / name)))
        with pytest.raises(Exception) as caught:
            client.predict(paths, api_name="/classify_scan")
        assert fragment in str(caught.value), (case, str(caught.value))
    assert client.predict([handle_file(str(mni_template()))], api_name="/classify_scan")[0]["scans"]  # still serving


def test_bad_inputs_get_one_sentence_and_the_server_keeps_serving(client, tmp_path):
    cases = {"notes.txt": (b"definitely not an image", "not an image"), "empty.jpg": (b"", "empty"),
             "cut.jpg": (EXAMPLES[0].read_bytes()[:1500], "truncated or corrupt"), "huge.png": (png_header_only(9000, 9000), "megapixel limit")}
    for name, (data, fragment) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(Exception) as caught:
            classify(client, path)
        assert fragment in str(caught.value), (name, str(caught.value))
        assert classify(client, EXAMPLES[2])[0]["label"]  # the next good request succeeds


def test_every_user_input_through_the_app(client, tmp_path):
    for name, data, expected in user_inputs():
        path = tmp_path / name
        path.write_bytes(data)
        if expected == "ok":
            assert classify(client, path)[0]["label"] in CLASSES, name
        else:
            with pytest.raises(Exception) as caught:
                classify(client, path)
            assert expected in str(caught.value), (name, str(caught.value))


def test_uploads_are_deleted_after_the_response(client, app_server, tmp_path):
    path = tmp_path / "private-scan.png"
    Image.open(EXAMPLES[3]).rotate(7).save(path)  # content no other test uploads
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    classify(client, path)
    left = [p for p in app_server[1].rglob("*") if p.is_file() and hashlib.sha256(p.read_bytes()).hexdigest() == digest]
    assert left == []


def test_concurrent_clients_get_no_errors(app_server):
    def session(index: int) -> int:
        own = Client(app_server[0], verbose=False)
        for i in range(3):
            assert classify(own, EXAMPLES[(index + i) % len(EXAMPLES)])[0]["label"]
        return 3

    with ThreadPoolExecutor(6) as pool:
        assert sum(pool.map(session, range(6))) == 18


def test_a_path_outside_the_uploads_is_refused(app_server):
    payload = {"data": [{"path": str(ROOT / "weights" / "resnet50" / "config.json"), "meta": {"_type": "gradio.FileData"}}, "resnet50"]}
    request = urllib.request.Request(app_server[0] + "gradio_api/call/classify", data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    event_id = json.loads(urllib.request.urlopen(request).read())["event_id"]
    stream = urllib.request.urlopen(f"{app_server[0]}gradio_api/call/classify/{event_id}").read().decode()
    assert "event: error" in stream and "weights_sha256" not in stream


def test_page_names_the_model_and_says_it_is_not_a_medical_device(app_server):
    text = json.dumps(json.loads(urllib.request.urlopen(app_server[0] + "config").read()))
    assert "not a medical device" in text
    assert "ResNet-50" in text and "no training twin" in text


def test_the_api_lists_its_four_endpoints_only(client):
    endpoints = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert endpoints == {"/classify", "/classify_batch", "/classify_scan", "/predict"}  # the page's own events are not listed


def test_the_mcp_tool_is_listed_and_answers(app_server):
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async def talk():
        async with streamable_http_client(app_server[0] + "gradio_api/mcp/") as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                tools = {tool.name: tool for tool in (await session.list_tools()).tools}
                image = "data:image/jpeg;base64," + base64.b64encode(EXAMPLES[2].read_bytes()).decode()
                return tools, await session.call_tool("classify_brain_mri", {"image": image})

    tools, result = asyncio.run(talk())
    assert set(tools) == {"classify_brain_mri", "classify_batch", "classify_scan", "predict"}  # the page's own events are not tools
    assert "checked on only a few volumes" in tools["classify_scan"].description and "prefer classify_brain_mri" in tools["predict"].description
    description = tools["classify_brain_mri"].description
    assert "not a medical device" in description and "probabilities" in description and "warning" in description
    text = " ".join(getattr(c, "text", "") for c in result.content)
    assert not result.isError and "'label': 'meningioma'" in text and "'probabilities'" in text and "'warning': None" in text


@pytest.mark.slow  # builds the whole page (9 s)
def test_safe_launch_defaults(monkeypatch):
    import gradio as gr

    import app
    from brain_tumor import Classifier

    captured = {}
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kwargs: captured.update(kwargs))
    demo = app.build_app({"resnet50": Classifier.from_pretrained(ROOT / "weights" / "resnet50")})
    app.launch(demo)
    assert captured["share"] is False and captured["run_history"] is False and captured["mcp_server"] is True
    assert captured["allowed_paths"] == [str(ROOT / "examples")] and captured["max_file_size"] == app.MAX_FILE_SIZE
    assert captured["ssr_mode"] is False
    assert demo.analytics_enabled is False and demo.delete_cache == (300, 900)


@pytest.mark.slow  # a benchmark run
def test_latency_benchmark_prints_its_table(tmp_path):
    weights = save_tiny_model(tmp_path / "w", "resnet50", 64)
    result = run_module("benchmarks.latency", "--weights", weights, "--rounds", "3")
    rows = [line.split() for line in result.stdout.splitlines() if re.match(r"(predict|explain) +\d+ ", line)]
    assert [(r[0], r[1]) for r in rows] == [("predict", "1"), ("explain", "1"), ("predict", "16"), ("explain", "16")]
    assert all(float(r[2]) > 0 and float(r[3]) >= float(r[2]) for r in rows)
    assert "explain / predict at batch 1:" in result.stdout


def test_the_api_page_names_every_parameter_and_its_examples_are_brain_mri_in_this_repository(app_server):
    info = json.load(urllib.request.urlopen(app_server[0] + "gradio_api/info"))
    examples = []
    for endpoint in ("/classify", "/classify_batch", "/classify_scan", "/predict"):
        for parameter in info["named_endpoints"][endpoint]["parameters"]:
            assert not parameter["label"].startswith("parameter_"), (endpoint, parameter["label"])
            if parameter["component"] == "File":
                given = parameter["example_input"]
                examples += [f["url"] for f in (given if isinstance(given, list) else [given])]
    assert examples and "sample_file.pdf" not in json.dumps(info)
    assert all((ROOT / e).is_file() for e in examples) and any(e.endswith(".nii.gz") for e in examples)
