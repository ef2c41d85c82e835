"""The page in a real browser (Debian's chromium, driven by Playwright): what a first-time user does."""
from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import EXAMPLES, ROOT, SERIES_SLICES, colour_photo, make_dicom, make_series, mni_template

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
LABEL = "#confidences [data-testid=label-output-value]"
if not Path(CHROMIUM).exists() and not os.environ.get("CI"):
    pytest.skip("Debian's chromium is not installed (apt-get install chromium); .ci/run installs it, and in CI these tests never skip",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


@pytest.fixture(scope="module")
def browser():
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        yield browser
        browser.close()


@pytest.fixture()
def page(browser, app_server):
    context = browser.new_context(viewport={"width": 1280, "height": 1100}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.goto(app_server[0], wait_until="load")
    page.locator("#upload input[type=file]").wait_for(state="attached")
    yield page
    context.close()


def upload(page, path) -> None:
    page.locator("#upload input[type=file]").set_input_files(str(path))


def wait_for_label(page, text: str) -> None:
    page.wait_for_function(f"document.querySelector('{LABEL}')?.innerText.includes('{text}')")


def toasts(page) -> list[str]:
    return page.locator("[data-testid=toast-body]").all_inner_texts()


def test_an_upload_shows_answer_heatmap_caption_and_legend(page):
    upload(page, EXAMPLES[0])
    wait_for_label(page, "Glioma")
    assert "Glioma" in page.locator("#headline").inner_text() and "confidence" in page.locator("#headline").inner_text()
    page.wait_for_function("document.querySelector('#overlay img')?.complete && document.querySelector('#overlay img').naturalWidth > 0")
    assert page.evaluate("document.querySelector('#overlay img').naturalWidth") == Image.open(EXAMPLES[0]).width
    assert "Heatmap for: Glioma" in page.locator("#caption").inner_text()
    trust = page.locator("#trust")  # the measured trust figure, right under the map it qualifies
    assert "this map's peak fell inside the tumour box on" in trust.inner_text()
    heatmap_bottom = page.evaluate("document.querySelector('#overlay').getBoundingClientRect().bottom")
    assert 0 <= trust.bounding_box()["y"] - heatmap_bottom < 40
    assert page.locator(".legend").is_visible() and "raised the score most" in page.locator(".legend").inner_text()
    assert "not a medical device" in page.locator("#notice").inner_text()
    assert "inside the tumour box" in page.locator("#model-line").inner_text()
    page.screenshot(path=str(ARTIFACTS / "app-screenshot.png"), full_page=True)


def test_the_gated_model_explains_its_map_and_says_how_often_it_finds_the_tumour(page):
    upload(page, EXAMPLES[0])
    wait_for_label(page, "Glioma")
    page.locator("#model input").click()
    page.get_by_role("option", name="resnet50_gated").click()
    page.wait_for_function("document.querySelector('#caption')?.innerText.includes('attention pool')")
    assert "trained on tumour boxes" in page.locator("#caption").inner_text()
    assert "this map's peak fell inside the tumour box on" in page.locator("#trust").inner_text()
    page.wait_for_function("document.querySelector('#model-line')?.innerText.includes('attention pool')")
    page.wait_for_function("!document.body.innerText.includes('processing |')")  # the new overlay is in
    page.screenshot(path=str(ARTIFACTS / "app-gated.png"), full_page=True)


def error_badges(page) -> int:
    return page.locator(".error, [data-testid=error]").count()


def test_a_file_the_tab_cannot_read_gives_one_sentence_and_the_page_stays_usable(page, tmp_path):
    upload(page, EXAMPLES[0])
    wait_for_label(page, "Glioma")
    bad = tmp_path / "scan.jpg"
    bad.write_text("this is a text file")
    upload(page, bad)
    page.wait_for_function("document.querySelector('#headline')?.innerText.includes('not an image in a supported format')")
    page.wait_for_timeout(1000)  # a toast or an error badge, if any, would have arrived by now
    assert toasts(page) == [] and error_badges(page) == 0
    assert page.locator(LABEL).count() == 0 and page.locator("#overlay img").count() == 0  # the old answer is gone
    volume = tmp_path / "brain.nii.gz"
    volume.write_bytes(mni_template().read_bytes())
    upload(page, volume)  # one action: the box took the new file
    page.wait_for_function("document.querySelector('#headline')?.innerText.includes('is a NIfTI volume, not one slice; the Whole scan tab reads it.')")
    page.screenshot(path=str(ARTIFACTS / "app-bad-file.png"), full_page=True)
    upload(page, EXAMPLES[2])
    wait_for_label(page, "Meningioma")
    assert toasts(page) == [] and error_badges(page) == 0


@pytest.mark.parametrize("name", ["IM0001", "slice.dcm"])
def test_dicom_files_are_analysed_whatever_their_name(page, tmp_path, name):
    path = tmp_path / name
    path.write_bytes(make_dicom(np.asarray(Image.open(EXAMPLES[6]).convert("L"), np.uint16) * 16))
    upload(page, path)
    wait_for_label(page, "Pituitary")
    assert toasts(page) == []


def test_an_explained_class_is_named_and_a_new_image_returns_to_the_predicted_class(page):
    upload(page, EXAMPLES[0])
    wait_for_label(page, "Glioma")
    page.locator("#advanced").click()
    page.locator("#target input").click()
    page.get_by_role("option", name="Meningioma").click()
    page.wait_for_function("document.querySelector('#caption')?.innerText.includes('Heatmap for: Meningioma')")
    assert "improbable" in page.locator("#caption").inner_text()
    upload(page, EXAMPLES[4])
    wait_for_label(page, "No tumour")
    page.wait_for_function("document.querySelector('#caption')?.innerText.includes('Heatmap for: No tumour')")
    assert page.locator("#target input").input_value() == "Predicted class"


def test_the_gallery_names_true_class_plane_and_mistakes(page):
    captions = page.locator("#examples").inner_text()
    assert "Meningioma, coronal" in captions and "Glioma, axial" in captions and "Pituitary tumour, coronal" in captions
    note = page.locator("#examples-note").inner_text()
    assert "true class and plane" in note and ("misclassified" not in captions or "is classified as" in note)
    page.locator("#examples button.thumbnail-item, #examples .thumbnail-item").nth(2).click()
    wait_for_label(page, "Meningioma")


def test_the_warning_leads_when_the_input_is_not_an_mri(page, tmp_path):
    photo = tmp_path / "holiday.png"
    colour_photo().save(photo)
    upload(page, photo)
    page.wait_for_function("document.querySelector('#headline')?.innerText.includes('does not look like a brain MRI slice')")
    assert not page.locator("#headline").inner_text().startswith("Meningioma")
    page.screenshot(path=str(ARTIFACTS / "app-ood-warning.png"), full_page=True)


def test_on_a_phone_the_result_comes_into_view(browser, app_server):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.goto(app_server[0], wait_until="load")
    upload(page, EXAMPLES[2])
    wait_for_label(page, "Meningioma")
    page.wait_for_function("""(() => { const r = document.getElementById('result').getBoundingClientRect();
                              return r.top < window.innerHeight && r.bottom > 0 && r.top > -r.height; })()""")
    page.screenshot(path=str(ARTIFACTS / "app-phone.png"))
    context.close()


def test_analyse_with_no_image_says_what_to_do(page):
    page.locator("#analyse").click()
    page.locator("[data-testid=toast-body]").first.wait_for()
    assert "Upload a slice first" in toasts(page)[0]


def test_the_report_downloads_as_a_pdf(page, tmp_path):
    upload(page, EXAMPLES[0])
    wait_for_label(page, "Glioma")
    with page.expect_download() as download:
        page.locator("#report-button").click()
    path = tmp_path / "report.pdf"
    download.value.save_as(path)
    assert path.read_bytes().startswith(b"%PDF") and download.value.suggested_filename.endswith(".pdf")


def test_a_batch_fills_a_table_and_a_row_shows_its_heatmap(page, tmp_path):
    archive = tmp_path / "scans.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in EXAMPLES[:4]:
            handle.write(path, f"scans/{path.name}")
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"nope")
    page.get_by_role("tab", name="Many slices").click()
    page.locator("#batch-files input[type=file]").set_input_files([str(EXAMPLES[6]), str(bad), str(archive)])
    page.wait_for_function("document.querySelectorAll('#batch-files .file-preview tr, #batch-files tbody tr').length >= 3")
    page.locator("#batch-run").click()
    page.wait_for_function("document.querySelector('#batch-table')?.innerText.includes('scans.zip/scans/glioma_1.jpg')")
    table = page.locator("#batch-table").inner_text()
    assert "broken.png" in table and "not an image" in table and "Pituitary tumour" in table
    assert page.locator("#batch-table img").count() >= 5  # thumbnails
    page.locator("#batch-table").get_by_text("scans.zip/scans/glioma_1.jpg").click()
    page.wait_for_function("document.querySelector('#batch-heatmap img') !== null")
    assert "Heatmap for: Glioma" in page.locator("#batch-caption").inner_text()
    assert page.locator("#batch-csv a").count() >= 1
    page.screenshot(path=str(ARTIFACTS / "app-batch.png"), full_page=True)


def test_a_batch_row_shows_its_heatmap_in_view_and_the_table_fits(page, tmp_path):
    page.get_by_role("tab", name="Many slices").click()
    page.locator("#batch-files input[type=file]").set_input_files([str(p) for p in EXAMPLES[:3]])
    page.wait_for_function("document.querySelectorAll('#batch-files .file-preview tr, #batch-files tbody tr').length >= 3")
    page.locator("#batch-run").click()
    page.wait_for_function(f"document.querySelector('#batch-table')?.innerText.includes('{EXAMPLES[2].name}')")
    table = page.locator("#batch-table").bounding_box()
    header = page.locator("#batch-table th").last.bounding_box()
    assert header["x"] + header["width"] <= table["x"] + table["width"] + 2  # the last column is not cut off
    page.locator("#batch-table").get_by_text(EXAMPLES[2].name).last.click()
    page.wait_for_function("document.querySelector('#batch-heatmap img') !== null")
    box = page.locator("#batch-heatmap img").bounding_box()
    assert 0 <= box["y"] and box["y"] + box["height"] / 2 <= page.viewport_size["height"]  # in view, not below the fold


def test_on_a_phone_the_gallery_captions_are_whole_and_clear_of_the_label(browser, app_server):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.goto(app_server[0], wait_until="load")
    gallery = page.locator("#examples")
    gallery.scroll_into_view_if_needed()
    heading = page.locator("#examples-heading").bounding_box()
    first = page.locator("#examples .thumbnail-item").first.bounding_box()
    assert heading["y"] + heading["height"] <= first["y"] + 1  # nothing covers the thumbnails
    assert page.locator("#examples [data-testid=block-label]").count() == 0
    overflowing = page.evaluate("""[...document.querySelectorAll('#examples .caption-label')]
                                   .filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.innerText)""")
    assert overflowing == []
    page.screenshot(path=str(ARTIFACTS / "app-phone-gallery.png"), full_page=True)
    context.close()


def open_scan_tab(page):
    page.get_by_role("tab", name="Whole scan").click()
    page.locator("#scan-files input[type=file]").wait_for(state="attached")


def wait_for_scan(page, text: str) -> None:
    page.wait_for_function(f"document.querySelector('#scan-summary')?.innerText.includes('{text}')")
    page.wait_for_function("document.querySelector('#scan-slice img')?.complete && document.querySelector('#scan-slice img').naturalWidth > 0")
    page.wait_for_function("document.querySelector('#scan-plot img, #scan-plot svg, #scan-plot canvas') !== null")


def test_a_nifti_volume_shows_its_plot_slider_and_key_slice(page, tmp_path):
    open_scan_tab(page)
    volume = tmp_path / "mni152.nii.gz"
    volume.write_bytes(mni_template().read_bytes())
    page.locator("#scan-files input[type=file]").set_input_files(str(volume))
    page.locator("#scan-run").click()
    page.wait_for_function(r"/\d+\/140 slices/.test(document.body.innerText)")  # the progress bar counts the slices scored
    wait_for_scan(page, "a NIfTI volume of 189 axial slices")
    summary = page.locator("#scan-summary").inner_text()
    assert "Checked on held-out scans" in summary and "Rule:" in summary
    caption = page.locator("#scan-caption").inner_text()
    assert "(key slice)" in caption and "Heatmap for:" in caption
    assert page.locator("#scan-slider").is_visible()
    page.screenshot(path=str(ARTIFACTS / "app-scan-nifti.png"), full_page=True)
    slider = page.locator("#scan-slider input[type=number]")
    slider.fill("95")
    slider.press("Enter")
    page.locator("#scan-slider input[type=range]").dispatch_event("pointerup")
    page.wait_for_function("document.querySelector('#scan-caption')?.innerText.startsWith('Slice 95')")


def test_a_zipped_dicom_series_is_answered(page, tmp_path):
    open_scan_tab(page)
    archive = tmp_path / "series.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for name, data in make_series(SERIES_SLICES):
            handle.writestr(f"patient/{name}", data)
    page.locator("#scan-files input[type=file]").set_input_files(str(archive))
    page.locator("#scan-run").click()
    wait_for_scan(page, "a DICOM series of 6 acquired slices")
    assert "Glioma" in page.locator("#scan-summary").inner_text() or "No tumour" in page.locator("#scan-summary").inner_text()
    page.screenshot(path=str(ARTIFACTS / "app-scan-dicom.png"), full_page=True)
