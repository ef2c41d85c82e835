"""Brain-tumour MRI classifier: a Gradio page over the brain_tumor package.

    python app.py [--weights DIR|HUB_ID] [--host H] [--port N] [--share] [--no-mcp]

Serves the page, the API (classify, classify_batch, classify_scan, and the older predict) and, unless
--no-mcp, the same endpoints as MCP tools. Research use only; not a medical device.
"""
from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import io
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
from gradio.utils import get_upload_folder, is_in_or_equal  # noqa: E402

from brain_tumor import DISPLAY_NAMES, Classifier, UserError, load_image  # noqa: E402
from brain_tumor.batch import classify_items, csv_text, nested_row  # noqa: E402
from brain_tumor.card import NOTICE, summary_line, trust_sentence  # noqa: E402
from brain_tumor.explain import OFFERED  # noqa: E402
from brain_tumor.models import get_architecture  # noqa: E402
from brain_tumor import scan as whole_scan  # noqa: E402
from brain_tumor.uploads import Item, gather, scans_of  # noqa: E402
from brain_tumor.volumes import PLANES  # noqa: E402
from brain_tumor.weights import WeightsError, available_weights  # noqa: E402

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE / "examples"
MAX_FILE_SIZE = "25mb"
MAX_BATCH = 500
QUEUE_SIZE = 32
PREDICTED = "Predicted class"
IMPROBABLE = 0.05  # below this probability the caption says the explained class is unlikely
SCRATCH_PREFIX, SCRATCH_LIFETIME_S = "brain-tumor-out-", 900  # reports and CSVs handed out live 15 minutes
# A session keeps what it read of its uploads in memory (for a second run, another plane or model) this long, up to KEPT_BYTES.
KEEP_S, KEPT_BYTES = 900, 256 * 2**20
DISPLAY_SIDE = 512  # the Whole scan tab scales smaller slices up to this (a 2 mm volume's slices are about 100 px)
# The API page's example inputs: paths in this repository (Gradio's own example is a PDF).
EXAMPLE_SLICES, EXAMPLE_SCAN = ("examples/meningioma_1.jpg", "examples/glioma_1.jpg"), "examples/mni152_2mm.nii.gz"
EXAMPLE_DIGESTS = {hashlib.sha256(p.read_bytes()).hexdigest() for p in EXAMPLES.glob("*.jpg")}
LEGEND = ("<div class='legend'><span>little effect</span><span class='bar'></span><span>raised the score most</span></div>")
CSS = """
.legend {display:flex; align-items:center; gap:8px; font-size:0.85em; margin-top:-4px}
.legend .bar {flex:1; height:10px; border-radius:3px;
  background:linear-gradient(to right,#00007f,#0000ff,#007fff,#00ffff,#7fff7f,#ffff00,#ff7f00,#ff0000,#7f0000)}
#headline p {font-size:1.35em; margin:0}
#headline.warn p {color:#b45309}
#trust p {margin:2px 0 4px; font-size:0.95em}
#examples .caption-label {white-space:normal; overflow:visible; text-overflow:clip}
#examples .grid-wrap, #examples .gallery-container {height:auto !important; max-height:none !important; overflow:visible !important}
#batch-table .text {word-break:normal !important; overflow-wrap:normal !important; hyphens:none}
#batch-table .body-cell:nth-child(2) .text, #batch-table .body-cell:nth-child(5) .text {overflow-wrap:anywhere !important}
#model-row {flex-wrap:wrap}
#model-row > #model {min-width:200px !important}
#model-row > #model-line {min-width:min(100%, 420px) !important}
@media (max-width: 640px) {
  #examples .grid-container {grid-template-columns:repeat(2, minmax(0, 1fr)) !important}
  #intro p, #notice p, #model-line p {font-size:0.9em; line-height:1.35}
  #intro h1 {font-size:1.5em; margin-bottom:4px}
  #batch-table .first-column {display:none !important}  /* no thumbnails: the page is 64 px narrower than the screen */
  #batch-table .header-table {width:100% !important; table-layout:fixed}
  #batch-table .header-cell, #batch-table .body-cell {font-size:12px; padding-left:3px !important; padding-right:3px !important;
    box-sizing:border-box; overflow:hidden}
  #batch-table .body-cell:nth-child(4) * {white-space:nowrap !important}  /* 99.8, never 99/.8 */
  #batch-table .header-cell:nth-child(2), #batch-table .body-cell:nth-child(2) {--w:calc((100vw - 68px) * 0.26)}
  #batch-table .header-cell:nth-child(3), #batch-table .body-cell:nth-child(3) {--w:calc((100vw - 68px) * 0.28)}
  #batch-table .header-cell:nth-child(4), #batch-table .body-cell:nth-child(4) {--w:calc((100vw - 68px) * 0.13)}
  #batch-table .header-cell:nth-child(5), #batch-table .body-cell:nth-child(5) {--w:calc((100vw - 68px) * 0.33)}
  #batch-table .header-cell:not(.first-column), #batch-table .body-cell:not(.first-column) {
    width:var(--w) !important; min-width:var(--w) !important; max-width:var(--w) !important; flex:0 0 var(--w) !important}
}
"""
# Gradio scopes the css above to the page's blocks; the footer lies outside them.
HEAD = "<style>@media (max-width: 640px) { footer .show-api, footer .show-api-divider {display:flex !important} }</style>"
SCROLL_TO_RESULT = "() => { if (window.innerWidth < 900) document.getElementById('result')?.scrollIntoView({behavior: 'smooth'}); }"
SCROLL_TO_BATCH = "() => { document.getElementById('batch-result')?.scrollIntoView({behavior: 'smooth', block: 'nearest'}); }"
CLICK_REPORT_LINK = "() => { setTimeout(() => document.querySelector('#report-file a')?.click(), 50); }"
# Enter in the slice slider's number box commits the number as a drag's release does (Gradio commits it on blur only).
ENTER_COMMITS_SLICE = """() => { document.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && event.target.matches?.('#scan-slider input[type=number]')) event.target.blur(); }); }"""
log = logging.getLogger("brain_tumor.app")


def load_models(weights: str | None) -> dict[str, Classifier]:
    """Every model the page offers, loaded once at start-up: the named one, or all of weights/."""
    if weights:
        model = Classifier.from_pretrained(weights)
        return {model.config.architecture: model}
    folders = available_weights()
    if not folders:
        Classifier.from_pretrained(None)  # raises the one-sentence 'no weights' error
    return {folder.name: Classifier.from_pretrained(folder) for folder in folders}


def _upload_path(payload) -> Path | None:
    """The server-side file behind an upload, refusing anything outside the upload cache or
    examples/ (raw payloads skip Gradio's own path check)."""
    if payload is None:
        return None
    path = payload.get("path") if isinstance(payload, dict) else getattr(payload, "path", payload)
    if not path:
        return None
    path = Path(path).resolve()
    if not (is_in_or_equal(path, get_upload_folder()) or is_in_or_equal(path, EXAMPLES)):
        raise gr.Error("That file is not an upload to this page; upload the image again.", print_exception=False)
    return path


def _is_gallery_copy(path: Path) -> bool:
    # Gradio serves the examples from copies in its cache; those must outlive a request.
    return is_in_or_equal(path, EXAMPLES) or hashlib.sha256(path.read_bytes()).hexdigest() in EXAMPLE_DIGESTS


def _forget(path: Path) -> None:
    """Delete an upload once it has been read: user images are not kept after the response."""
    try:
        if not path.is_file() or _is_gallery_copy(path):
            return
        path.unlink()
        if path.parent != Path(get_upload_folder()).resolve():
            path.parent.rmdir()  # Gradio keeps each upload in a folder of its own
    except OSError:
        pass


def read_upload(payload):
    """The picture in an upload (image or DICOM, any file name), or None for no upload; the upload is deleted after
    reading. A file that cannot be read raises a UserError with its one sentence."""
    path = _upload_path(payload)
    if path is None:
        return None
    try:
        return load_image(path)
    finally:
        _forget(path)


def upload_name(payload) -> str:
    """The uploaded file's own name (without its folder), for reports and tables."""
    if isinstance(payload, dict):
        return Path(payload.get("orig_name") or payload.get("path") or "slice").name
    return Path(getattr(payload, "orig_name", None) or getattr(payload, "path", None) or str(payload)).name


def headline(prediction) -> str:
    if prediction.warning:
        return f"⚠️ {prediction.warning}"
    return f"**{DISPLAY_NAMES[prediction.label]}**: {prediction.confidence:.1%} confidence"


def caption(explanation, model: Classifier) -> str:
    """What the heatmap is: the class it explains, the method, where it reads (brain_tumor.models: cam_reading)."""
    p = explanation.prediction.probabilities[explanation.target]
    where, red = get_architecture(model.config.architecture).cam_reading(explanation.layer)
    text = f"Heatmap for: **{DISPLAY_NAMES[explanation.target]}** ({p:.1%}), by {explanation.method} at {where}. Red: {red}."
    if p < IMPROBABLE:
        text += f" This class is improbable for this slice ({p:.1%}), so the map shows where the little evidence for it lies."
    return text


def trust_line(explanation, model: Classifier) -> str:
    """How far to trust this heatmap, right under the map it qualifies: the measured figure for a map of a tumour class
    ('' when this method and layer were not measured); for a map of "No tumour", what it shows instead."""
    if explanation.target == "notumor":
        reading = get_architecture(model.config.architecture).no_tumour_reading
        return f"**How to read this map:** {reading} The tumour-box figure is about maps of a tumour class, so it does not apply here."
    method, layers = model.explain_settings()
    if (explanation.method, explanation.layer) != (method, "+".join(layers)):
        return ""
    sentence = trust_sentence(model.config)
    return f"**How far to trust this map:** {sentence}" if sentence else ""


def confidences(prediction) -> dict[str, float]:
    return {DISPLAY_NAMES[k]: v for k, v in prediction.probabilities.items()}


def describe_model(model: Classifier) -> str:
    return f"**Model:** {summary_line(model.config)}"


def layer_choices(model: Classifier) -> list[str]:
    names = list(get_architecture(model.config.architecture).cam_layers)
    return names + (["+".join(names)] if len(names) > 1 else [])


def gallery_items(model: Classifier) -> tuple[list[tuple[str, str]], str]:
    """(file, caption) per example, its true class and plane; and a note naming the examples the model gets wrong."""
    rows = list(csv.DictReader(open(EXAMPLES / "examples.csv", newline="")))
    items, wrong = [], []
    for row, prediction in zip(rows, model.predict_batch([EXAMPLES / r["file"] for r in rows])):
        text = f"{DISPLAY_NAMES[row['true_class']]}, {row['plane']}"
        if prediction.label != row["true_class"]:
            text += " (misclassified)"
            wrong.append(f"{DISPLAY_NAMES[row['true_class']]} ({row['file']}) is classified as {DISPLAY_NAMES[prediction.label]}")
        items.append((str(EXAMPLES / row["file"]), text))
    note = ("Captions give each example's true class and plane. Shown on purpose: " + "; ".join(wrong) + " by the default model.") if wrong else \
        "Captions give each example's true class and plane."
    return items, note


class Models:
    """The models the page offers, and what every tab asks of them."""

    def __init__(self, models: dict[str, Classifier]):
        self.by_name = models
        self.names = list(models)
        self.default = models[self.names[0]]
        self.by_display = {DISPLAY_NAMES[c]: c for c in self.default.classes}

    def pick(self, name: str | None) -> Classifier:
        return self.by_name.get(name or self.names[0]) or self.default

    def explain(self, picture, model_name, target_name=PREDICTED, method=None, layer=None):
        model = self.pick(model_name)
        if layer not in layer_choices(model):
            layer = None  # the model was just switched: its own default layer
        try:
            return model.explain(picture, target=self.by_display.get(target_name), method=method or None, layer=layer or None)
        except UserError as error:
            raise gr.Error(str(error), print_exception=False) from None
        except Exception:
            log.exception("analysis failed")
            raise gr.Error("Something went wrong analysing this image; please try another file.", print_exception=False) from None


def build_app(models: dict[str, Classifier]) -> gr.Blocks:
    """The page: a header with the model, then the One slice, Many slices and Whole scan tabs; and the API."""
    offer = Models(models)
    with gr.Blocks(title="Brain tumour MRI classifier", analytics_enabled=False, delete_cache=(300, 900)) as demo:
        gr.Markdown(
            "# Brain tumour MRI classifier\n"
            "Upload a brain MRI: one 2D slice (an image or a DICOM file), many slices, or a whole scan (a NIfTI volume or a "
            "DICOM series). The model gives its confidence for **glioma**, **meningioma**, **pituitary tumour** or **no tumour**, "
            "and a heatmap of the regions that drove that answer. Programs and agents: \"Use via API or MCP\" at the foot of the page.",
            elem_id="intro",
        )
        gr.Markdown(f"⚠️ {NOTICE}", elem_id="notice")
        with gr.Row(equal_height=True, elem_id="model-row"):
            model_choice = gr.Dropdown(offer.names, value=offer.names[0], label="Model", visible=len(offer.names) > 1,
                                       elem_id="model", scale=1)
            model_line = gr.Markdown(describe_model(offer.default), elem_id="model-line")
        model_choice.input(lambda name: describe_model(offer.pick(name)), model_choice, model_line, api_visibility="private")
        one_slice_tab(offer, model_choice)
        many_slices_tab(offer, model_choice)
        scan_tab(offer, model_choice)
        api_endpoints(offer)
        demo.load(None, js=ENTER_COMMITS_SLICE)
    demo.queue(max_size=QUEUE_SIZE)
    return demo


# ---- the One slice tab

def one_slice_tab(offer: Models, model_choice: gr.Dropdown) -> None:
    gallery, gallery_note = gallery_items(offer.default)
    with gr.Tab("One slice"):
        with gr.Row():
            with gr.Column():
                upload = gr.File(label="MRI slice: JPEG, PNG, TIFF, BMP, WebP, or DICOM (any file name, e.g. IM0001)",
                                 file_count="single", type="filepath", elem_id="upload", height=120)
                preview = gr.Image(label="Your slice", type="pil", format="jpeg", interactive=False, height=300, elem_id="preview")
                analyse_button = gr.Button("Analyse", variant="primary", elem_id="analyse")
                with gr.Accordion("Advanced", open=False, elem_id="advanced"):
                    target = gr.Dropdown([PREDICTED] + list(offer.by_display), value=PREDICTED, label="Explain which class", elem_id="target")
                    method = gr.Dropdown(list(OFFERED), value=offer.default.explain_settings()[0], label="Explanation method", elem_id="method")
                    layer = gr.Dropdown(layer_choices(offer.default), value="+".join(offer.default.explain_settings()[1]), label="Layer",
                                        elem_id="layer")
            with gr.Column(elem_id="result"):
                summary = gr.Markdown(elem_id="headline")
                label = gr.Label(num_top_classes=4, label="Confidence per class", elem_id="confidences")
                overlay = gr.Image(label="Heatmap: where the model looked", type="pil", format="jpeg", interactive=False,
                                   height=360, elem_id="overlay")
                trust = gr.Markdown(elem_id="trust")
                gr.HTML(LEGEND)
                explained = gr.Markdown(elem_id="caption")
                opacity = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Heatmap opacity")
                report_button = gr.Button("Download report (PDF)", elem_id="report-button")
                report_file = gr.File(label="Report", visible=False, elem_id="report-file", interactive=False)
        gr.Markdown("**Examples**: click one to analyse it.", elem_id="examples-heading")
        examples = gr.Gallery(value=gallery, show_label=False, columns=4, height="auto", allow_preview=False, elem_id="examples")
        gr.Markdown("Examples from the Testing split, with no twin in the training data. " + gallery_note, elem_id="examples-note")
        state = gr.State(time_to_live=KEEP_S)  # this session's last picture and explanation, in memory only

    def show(explanation, opacity, name, model_name):
        model = offer.pick(model_name)
        warn = explanation.prediction.warning is not None
        return (gr.update(value=headline(explanation.prediction), elem_classes=["warn"] if warn else []),
                confidences(explanation.prediction), explanation.overlay_with(opacity), trust_line(explanation, model),
                caption(explanation, model), {"picture": explanation.image, "explanation": explanation, "name": name})

    def cleared(sentence: str):
        """The page after a file it cannot read: the sentence in the headline, the old answer gone, the upload box empty."""
        return (None, gr.update(value=f"⚠️ {sentence}", elem_classes=["warn"]), None, None, "", "", None, gr.update(value=PREDICTED), None)

    def on_upload(payload, model_name, method, layer, opacity):
        try:
            redirect = elsewhere(payload)
            if redirect:
                _forget(_upload_path(payload))
                return cleared(redirect)
            picture = read_upload(payload)
        except UserError as error:
            return cleared(str(error))
        if picture is None:
            return (gr.skip(),) * 9
        explanation = offer.explain(picture, model_name, PREDICTED, method, layer)
        # The box empties again, ready for the next slice; "Your slice" shows this one.
        return (picture, *show(explanation, opacity, Path(upload_name(payload)).stem, model_name), gr.update(value=PREDICTED), None)

    def on_example(model_name, method, layer, opacity, event: gr.SelectData):
        path, _ = gallery[event.index]
        explanation = offer.explain(load_image(path), model_name, PREDICTED, method, layer)
        return (explanation.image, *show(explanation, opacity, Path(path).stem, model_name), gr.update(value=PREDICTED))

    def on_settings(target_name, method, layer, model_name, opacity, session):
        if session is None:
            return (gr.skip(),) * 6
        return show(offer.explain(session["picture"], model_name, target_name, method, layer), opacity, session["name"], model_name)

    def on_analyse(target_name, method, layer, model_name, opacity, session):
        if session is None:
            gr.Warning("Upload a slice first (JPEG, PNG, TIFF, … or a DICOM file), or click one of the examples.")
            return (gr.skip(),) * 6
        return on_settings(target_name, method, layer, model_name, opacity, session)

    def on_opacity(session, opacity):
        return gr.skip() if session is None else session["explanation"].overlay_with(opacity)

    def on_model(model_name):
        model = offer.pick(model_name)
        return gr.update(choices=layer_choices(model), value="+".join(model.explain_settings()[1]))

    def on_report(session, model_name):
        if session is None:
            gr.Warning("Analyse a slice first; the report describes the current analysis.")
            return gr.skip()
        from brain_tumor.report import report_pdf

        model = offer.pick(model_name)
        path = scratch_file(f"{session['name']}-report.pdf")
        path.write_bytes(report_pdf(session["explanation"], summary_line(model.config), model.version))
        return gr.update(value=str(path), visible=True)

    results = [summary, label, overlay, trust, explained, state]
    upload.change(on_upload, [upload, model_choice, method, layer, opacity], [preview, *results, target, upload],
                  api_visibility="private", preprocess=False, concurrency_limit=1).then(None, js=SCROLL_TO_RESULT)
    examples.select(on_example, [model_choice, method, layer, opacity], [preview, *results, target],
                    api_visibility="private", concurrency_limit=1).then(None, js=SCROLL_TO_RESULT)
    gr.on([target.input, method.input, layer.input, model_choice.input], on_settings,
          [target, method, layer, model_choice, opacity, state], results, api_visibility="private", concurrency_limit=1)
    analyse_button.click(on_analyse, [target, method, layer, model_choice, opacity, state], results,
                         api_visibility="private", concurrency_limit=1).then(None, js=SCROLL_TO_RESULT)
    opacity.release(on_opacity, [state, opacity], overlay, api_visibility="private")
    model_choice.input(on_model, model_choice, layer, api_visibility="private")
    report_button.click(on_report, [state, model_choice], report_file, api_visibility="private").then(None, js=CLICK_REPORT_LINK)


def elsewhere(payload) -> str:
    """For a file another tab reads (a volume, an archive), the sentence saying which; '' for anything else."""
    if payload is None:
        return ""
    name = upload_name(payload)
    if name.lower().endswith((".nii", ".nii.gz")):
        return f"{name} is a NIfTI volume, not one slice; the Whole scan tab reads it."
    if name.lower().endswith(".zip"):
        return f"{name} is an archive, not one slice; the Many slices tab reads the slices in it, and the Whole scan tab a DICOM series."
    return ""


# ---- the Many slices tab

def many_slices_tab(offer: Models, model_choice: gr.Dropdown) -> None:
    with gr.Tab("Many slices"):
        with gr.Row():
            with gr.Column(scale=3):
                files = gr.File(label="Slices: images, DICOM files, or a .zip of them", file_count="multiple", type="filepath",
                                elem_id="batch-files")
                run = gr.Button("Classify all", variant="primary", elem_id="batch-run")
                status = gr.Markdown(elem_id="batch-status")
                table = gr.Dataframe(headers=["", "file", "label", "%", "warning or error"],
                                     datatype=["html", "str", "str", "number", "str"], interactive=False, wrap=True,
                                     column_widths=["56px", "21%", "19%", "13%", "35%"], max_height=100_000, elem_id="batch-table",
                                     label="%: the label's confidence. Click a row to see its heatmap; click a column's name to sort")
                csv_out = gr.File(label="CSV of all rows", interactive=False, elem_id="batch-csv")
            with gr.Column(scale=2, elem_id="batch-result"):
                heatmap = gr.Image(label="Heatmap of the chosen row", type="pil", format="jpeg", interactive=False, height=360,
                                   elem_id="batch-heatmap")
                gr.HTML(LEGEND)
                text = gr.Markdown(elem_id="batch-caption")
        rows_state = gr.State(time_to_live=KEEP_S)
        kept = gr.State(time_to_live=KEEP_S)  # the uploads' bytes, for the next click

    def on_batch(payloads, model_name, held, progress=gr.Progress()):
        if not payloads:
            raise gr.Error("Choose some slices first (images, DICOM files or a .zip of them).", print_exception=False)
        try:
            files, held = read_payloads(payloads, held)
        except UserError as error:  # the sentence above the table; the old answer cleared
            return f"⚠️ {error}", None, None, None, "", None, None
        rows, pictures = classify_many(files, offer.pick(model_name), progress)
        shown = [[thumbnail(pictures.get(r["file"])), r["file"], DISPLAY_NAMES.get(r["label"], "–"),
                  None if r["label"] is None else round(100 * r[r["label"]], 1), r["warning"] or r["error"] or ""] for r in rows]
        unread = sum(1 for r in rows if r["label"] is None)
        done = f"{len(rows) - unread} of {len(rows)} slices classified by {model_name or offer.names[0]}" + (
            f"; {unread} could not be read (their rows say why)." if unread else ".")
        return done, shown, csv_file(rows), None, "", {"rows": rows, "pictures": pictures}, held

    def on_select(batch, model_name, event: gr.SelectData):
        if not batch:
            return gr.skip(), gr.skip()
        name = event.row_value[1]
        picture = batch["pictures"].get(name)
        if picture is None:
            return None, f"{name} could not be read, so it has no heatmap."
        explanation = offer.explain(picture, model_name)
        model = offer.pick(model_name)
        return explanation.overlay, f"**{name}**: {caption(explanation, model)} {trust_line(explanation, model)}".strip()

    def on_model(batch, model_name):
        """Another model: the last table is not its answer, so it goes, with a sentence saying how to get the new one."""
        if not batch:
            return (gr.skip(),) * 6
        return f"The model is now {model_name}: click Classify all to classify these slices with it.", None, None, None, "", None

    run.click(on_batch, [files, model_choice, kept], [status, table, csv_out, heatmap, text, rows_state, kept],
              api_visibility="private", preprocess=False, concurrency_limit=1)
    selected = table.select(on_select, [rows_state, model_choice], [heatmap, text], api_visibility="private")
    selected.then(None, js=SCROLL_TO_BATCH)
    # a heatmap of the old table still being drawn must not land after the switch has cleared it
    model_choice.input(on_model, [rows_state, model_choice], [status, table, csv_out, heatmap, text, rows_state],
                       api_visibility="private", cancels=[selected])


# ---- the Whole scan tab

def scan_tab(offer: Models, model_choice: gr.Dropdown) -> None:
    """The Whole scan tab: upload, summary, the probabilities along the slices, and a slider over the slices with heatmaps."""
    with gr.Tab("Whole scan"):
        with gr.Row():
            with gr.Column(scale=1):
                files = gr.File(label=SCAN_FILES_LABEL, file_count="multiple", type="filepath", elem_id="scan-files", height=140)
                plane = gr.Radio(list(PLANES)[::-1], value="axial", label="Plane (NIfTI volumes)", elem_id="scan-plane")
                run = gr.Button("Analyse scan", variant="primary", elem_id="scan-run")
                series = gr.Dropdown([], label="Series", visible=False, elem_id="scan-series")
                heading = gr.Markdown(elem_id="scan-summary")
            with gr.Column(scale=2):
                gr.Markdown("**Probability of each class along the slices** (shaded: out of distribution; gaps: outside the head)",
                            elem_id="scan-plot-title")
                plot = gr.Plot(show_label=False, elem_id="scan-plot")
                slider = gr.Slider(0, 1, value=0, step=1, label="Slice (starts at the key slice: the most tumour-like slice of the brain)",
                                   visible=False, elem_id="scan-slider")
                picture = gr.Image(label="Slice with its heatmap", type="pil", format="jpeg", interactive=False, height=380,
                                   elem_id="scan-slice")
                gr.HTML(LEGEND)
                text = gr.Markdown(elem_id="scan-caption")
        results = gr.State(time_to_live=KEEP_S)
        kept = gr.State(time_to_live=KEEP_S)  # the uploads' bytes, for another click, plane or model

    def cleared(sentence: str):
        """The tab with one sentence where the summary goes, and the old answer gone."""
        return sentence, None, gr.update(visible=False), None, "", None, gr.update(choices=[], visible=False)

    def on_scan(payloads, plane, model_name, held, progress=gr.Progress()):
        try:
            files, held = read_payloads(payloads, held)
            found, failed = read_scans(files, offer.pick(model_name), plane, progress)
        except UserError as error:
            return *cleared(f"⚠️ {error}"), held
        choices = [(r.volume.name, i) for i, r in enumerate(found)]
        return (*show_series(found, 0, model_name, failed), found, gr.update(choices=choices, value=0, visible=len(found) > 1), held)

    def show_series(found, which, model_name, failed=()):
        result = found[int(which or 0)]
        picture, text = scan_slice(result, result.key_slice, offer.pick(model_name))
        unread = "".join(f"\n\n⚠️ {name}: {sentence}" for name, sentence in failed)
        return (scan_heading(result) + unread, scan_plot(result),
                gr.update(minimum=0, maximum=len(result.volume) - 1, value=result.key_slice, visible=True), picture, text)

    def on_series(found, which, model_name):
        return gr.skip() if not found else show_series(found, which, model_name)

    def on_slide(found, which, index, model_name):
        if not found:
            return gr.skip(), gr.skip()
        return scan_slice(found[int(which or 0)], index, offer.pick(model_name))

    def on_model(found, model_name):
        """Another model: the last answer is not its answer, so it goes, with a sentence saying how to get the new one."""
        if not found:
            return (gr.skip(),) * 7
        return cleared(f"The model is now {model_name}: click Analyse scan to score this scan with it.")

    run.click(on_scan, [files, plane, model_choice, kept], [heading, plot, slider, picture, text, results, series, kept],
              api_visibility="private", preprocess=False, concurrency_limit=1)
    series.input(on_series, [results, series, model_choice], [heading, plot, slider, picture, text], api_visibility="private")
    slider.release(on_slide, [results, series, slider, model_choice], [picture, text], api_visibility="private", concurrency_limit=1)
    model_choice.input(on_model, [results, model_choice], [heading, plot, slider, picture, text, results, series],
                       api_visibility="private")


SCAN_FILES_LABEL = "A whole scan: a NIfTI volume (.nii, .nii.gz), or a DICOM series (its files, or a .zip of them)"


def read_scans(files: list[tuple[str, bytes]], model: Classifier, plane: str, progress=None) -> tuple[list, list[tuple[str, str]]]:
    """Every scan in the uploaded files, scored (brain_tumor.scan.classify_scan), and (name, sentence) for each scan that
    could not be read; a UserError when there is no scan to answer."""
    if not files:
        raise UserError("Choose a scan first: a NIfTI file, or the files (or a .zip) of one DICOM series.")
    upload = files[0][0] if len(files) == 1 else f"the {len(files)} files"
    scans = scans_of(gather(files, scans=True, plane=plane or "axial"), upload)
    if all(s.error for s in scans):
        raise UserError(scans[0].error)
    results = []
    for scan in (s for s in scans if s.volume is not None):
        report = None
        if progress is not None:  # a gr.Progress is falsy until it tracks something
            report = lambda done, total, name=Path(scan.name).name: progress((done, total), desc=f"scoring {name}", unit="slices")  # noqa: E731
        results.append(whole_scan.classify_scan(model, scan.volume, progress=report))
    return results, [(s.name, s.error) for s in scans if s.error]


def scan_heading(result) -> str:
    lines = [f"**{result.summary}**", f"{result.counts()}.", *[f"Note: {n}" for n in result.volume.notes],
             f"⚠️ {result.rule.warning}", f"<small>Rule: {result.rule.describe()}</small>"]
    return "\n\n".join(lines)


def scan_plot(result):
    """The probabilities along the slices, drawn to read on a phone too: large type, the legend in two rows."""
    import matplotlib
    from matplotlib.figure import Figure

    from brain_tumor.report import draw_slice_probabilities

    with matplotlib.rc_context({"font.size": 12}):
        figure = Figure(figsize=(5.0, 3.4), dpi=150, layout="constrained")
        ax = figure.add_subplot()
        draw_slice_probabilities(ax, result)
        ax.set_xlabel(f"slice ({result.volume.plane})")
        ax.legend(ncols=2, loc="upper center", bbox_to_anchor=(0.5, -0.25), frameon=False)
    return figure


def scan_slice(result, index: int, model: Classifier):
    """The slice `index` of a scored scan with its heatmap, scaled up to DISPLAY_SIDE, and a caption (the key slice's
    explanation is kept)."""
    index = min(max(int(index), 0), len(result.predictions) - 1)  # a number typed into the slider's box may be outside
    if result.predictions[index] is None:
        return for_display(result.picture(index)), f"Slice {index} lies outside the head, so it was not scored."
    explanation = result.key_explanation if index == result.key_slice else model.explain(result.picture(index))
    p = result.predictions[index]
    rank = result.ranking.index(index) + 1
    text = (f"Slice {index}{' (key slice)' if index == result.key_slice else ''}: {DISPLAY_NAMES[p.label]} {p.confidence:.1%}; "
            f"tumour probability {result.tumour_probability(index):.1%}, rank {rank} of {len(result.ranking)}. "
            + (f"⚠️ {p.warning} " if p.warning else "") + caption(explanation, model) + " " + trust_line(explanation, model)).strip()
    return for_display(explanation.overlay), text


def for_display(picture):
    """A picture scaled up so its longer side is DISPLAY_SIDE (the page would draw a small slice small); larger ones as they are."""
    from PIL import Image

    side = max(picture.size)
    if side >= DISPLAY_SIDE:
        return picture
    scale = DISPLAY_SIDE / side
    return picture.resize((round(picture.width * scale), round(picture.height * scale)), Image.Resampling.BICUBIC)


# ---- the API (and the MCP tools): hidden components, so programs and agents get the whole answer

def api_endpoints(offer: Models) -> None:
    names = offer.names

    def classify_brain_mri(image: str, model: str = names[0]):
        """Classify one 2D brain MRI slice as glioma, meningioma, pituitary tumour or no tumour.

        Research use only: this is not a medical device and must not be used for diagnosis.

        Args:
            image: the slice, as an image file (JPEG, PNG, TIFF, BMP, WebP, GIF) or a DICOM file.
            model: which model to use (see the page; the default is the first).

        Returns:
            a JSON object with label (the most probable class), probabilities (one per class, summing to 1), out_of_distribution (true when the input does not look like a brain MRI slice), warning (a sentence, or null) and model; and the heatmap overlay image.
        """
        picture = read_upload_or_error(image)
        chosen = offer.pick(model)
        explanation = offer.explain(picture, model)
        prediction = explanation.prediction
        answer = {"label": prediction.label, "probabilities": prediction.probabilities,
                  "out_of_distribution": prediction.out_of_distribution, "warning": prediction.warning,
                  "model": model or names[0], "weights_version": chosen.version,
                  "heatmap": {"target": explanation.target, "method": explanation.method, "layer": explanation.layer}}
        return answer, explanation.overlay

    def classify_batch(files: list[str], model: str = names[0]):
        """Classify many slices (images, DICOM files or .zip archives of them): one row per file, and the same rows as CSV.

        Research use only; not a medical device. A file that cannot be read gets a row with its error.
        """
        try:
            rows, _ = classify_many(read_payloads(files)[0], offer.pick(model), None)
        except UserError as error:
            raise gr.Error(str(error), print_exception=False) from None
        return [nested_row(r) for r in rows], csv_file(rows)

    def classify_scan(files: list[str], model: str = names[0], plane: str = "axial"):
        """Score a whole brain MRI scan slice by slice: a NIfTI volume (.nii or .nii.gz), or a DICOM series (its files, or a .zip of them).

        Research use only: this is not a medical device, and the scan summary's rule was checked on only a few volumes from other collections (the answer's warning says how it scored).

        Args:
            files: the NIfTI file, or the DICOM files (or one .zip) of the series.
            model: which model to use (see the page; the default is the first).
            plane: for NIfTI volumes, the plane to cut along: axial, coronal or sagittal.

        Returns:
            a JSON object {"scans": [...], "unread": [...]}: one answer per scan, and the sentence for each scan that could not be read. Each answer has per-slice rows (probabilities, tumour probability, out-of-distribution flag), the ranking of slices by tumour probability, the key slice with its heatmap settings, the summary with the rule that made it, notes and the warning; and the key slice's heatmap overlay of the first scan.
        """
        if plane not in PLANES:
            raise gr.Error(f"{plane!r} is not a plane; choose axial, coronal or sagittal.", print_exception=False)
        try:
            results, failed = read_scans(read_payloads(files)[0], offer.pick(model), plane)
        except UserError as error:
            raise gr.Error(str(error), print_exception=False) from None
        answer = {"scans": [r.to_json() for r in results], "unread": [{"scan": name, "error": sentence} for name, sentence in failed]}
        return answer, results[0].key_explanation.overlay

    def predict(image: str, target_name: str = PREDICTED, opacity: float = 0.5, model_name: str = names[0]):
        """The older endpoint, kept for programs written against it; prefer classify_brain_mri. Research use only; not a medical device.

        Args:
            image: one 2D brain MRI slice (an image or a DICOM file).
            target_name: the class whose heatmap to draw (default: the predicted class).
            opacity: the heatmap's opacity over the slice, 0 to 1.
            model_name: which model to use.

        Returns:
            the confidence per class, the heatmap overlay, and the out-of-distribution warning (or an empty string).
        """
        explanation = offer.explain(read_upload_or_error(image), model_name, target_name)
        return confidences(explanation.prediction), explanation.overlay_with(opacity), explanation.prediction.warning or ""

    with gr.Row(visible=False):  # the labels and examples are what the API page shows for each parameter and answer
        image = mri_file("Brain MRI slice (an image or a DICOM file)")
        files = mri_file("Brain MRI slices (images, DICOM files, or a .zip of them)", file_count="multiple")
        scan = mri_file("A whole scan (a NIfTI volume, or a DICOM series' files or .zip)", (EXAMPLE_SCAN,), file_count="multiple")
        model = gr.Dropdown(names, value=names[0], label="Model")
        target = gr.Dropdown([PREDICTED] + list(offer.by_display), value=PREDICTED, label="Class the heatmap explains")
        opacity, plane = gr.Slider(0.0, 1.0, value=0.5, label="Heatmap opacity"), gr.Dropdown(list(PLANES), value="axial", label="Plane")
        answer, rows, scans = gr.JSON(label="Answer"), gr.JSON(label="Rows"), gr.JSON(label="Scans")
        overlay = gr.Image(type="pil", format="jpeg", label="Heatmap overlay")
        csv_out, label, warning = gr.File(label="CSV of the rows"), gr.Label(label="Confidence per class"), gr.Textbox(label="Warning")
        button = gr.Button()
    button.click(classify_brain_mri, [image, model], [answer, overlay], api_name="classify", preprocess=False, concurrency_limit=1)
    button.click(classify_batch, [files, model], [rows, csv_out], api_name="classify_batch", preprocess=False, concurrency_limit=1)
    button.click(classify_scan, [scan, model, plane], [scans, overlay], api_name="classify_scan", preprocess=False, concurrency_limit=1)
    # Public, so clients know its defaults and the old one-argument call still answers.
    button.click(predict, [image, target, opacity, model], [label, overlay, warning], api_name="predict", preprocess=False,
                 concurrency_limit=1)


def mri_file(label: str, examples: tuple[str, ...] = EXAMPLE_SLICES, **kwargs) -> gr.File:
    """A hidden file input of the API whose example on the API page is one of `examples` (brain MRI) rather than
    Gradio's sample PDF (a gr.File still: the page's front end knows no other name)."""
    component = gr.File(label=label, type="filepath", **kwargs)
    files = [{"path": e, "url": e, "orig_name": Path(e).name, "meta": {"_type": "gradio.FileData"}} for e in examples]
    single = component.file_count == "single"
    component.example_payload = lambda: files[0] if single else files
    component.example_value = lambda: examples[0] if single else list(examples)
    return component


def read_upload_or_error(payload):
    """The picture in an API call's upload; its one sentence as the call's error when there is none."""
    try:
        picture = read_upload(payload)
    except UserError as error:
        raise gr.Error(str(error), print_exception=False) from None
    if picture is None:
        raise gr.Error("No image was given; pass a JPEG, PNG or DICOM file.", print_exception=False)
    return picture


def classify_many(files: list[tuple[str, bytes]], model: Classifier, progress) -> tuple[list[dict], dict]:
    """Rows for many uploaded files (archives expanded by brain_tumor.uploads); and the pictures read."""
    try:
        items = [p for p in gather(files[:MAX_BATCH]) if isinstance(p, Item)]
    except UserError as error:  # over the file limit
        raise gr.Error(str(error), print_exception=False) from None
    return classify_items(model, items, (lambda listed: progress.tqdm(listed, desc="classifying")) if progress is not None else None)


def read_payloads(payloads, kept: dict[str, bytes] | None = None) -> tuple[list[tuple[str, bytes]], dict[str, bytes]]:
    """(the user's file name, its bytes) per upload, each upload's file deleted once read; and what a session keeps of
    them in memory (`kept`, by upload path, up to KEPT_BYTES) so that a second run, another plane or another model reads
    the same files again. A file neither on disk nor kept ends in one sentence."""
    kept, files, keep = kept or {}, [], {}
    for payload in payloads or []:
        path = _upload_path(payload)
        if path is None:
            continue
        if str(path) in kept:
            data = kept[str(path)]
        elif path.is_file():
            try:
                data = path.read_bytes()
            finally:
                _forget(path)
        else:
            raise UserError(f"{upload_name(payload)} is no longer held by this page (it keeps a session's uploads for "
                            f"{KEEP_S // 60} minutes, up to {KEPT_BYTES // 2**20} MB); remove it and choose it again.")
        files.append((upload_name(payload), data))
        keep[str(path)] = data
    return files, (keep if sum(map(len, keep.values())) <= KEPT_BYTES else {})


def thumbnail(picture) -> str:
    """A small inline JPEG for the batch table."""
    if picture is None:
        return ""
    small = picture.copy()
    small.thumbnail((64, 64))
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=80)
    return f"<img src='data:image/jpeg;base64,{base64.b64encode(buffer.getvalue()).decode()}' width='48'>"


def scratch_file(name: str) -> Path:
    """A fresh path for a file the page hands out (report, CSV); those older than the cache's 15 minutes go."""
    root = Path(get_upload_folder())
    for old in root.glob(f"{SCRATCH_PREFIX}*"):
        if time.time() - old.stat().st_mtime > SCRATCH_LIFETIME_S:
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=root)) / name


def csv_file(rows: list[dict]) -> str:
    path = scratch_file("brain-tumour-classifications.csv")
    path.write_text(csv_text(rows))
    return str(path)


def launch(demo: gr.Blocks, host: str | None = None, port: int | None = None, share: bool = False, mcp: bool = True, **kwargs):
    return demo.launch(
        server_name=host,  # None: GRADIO_SERVER_NAME, else 127.0.0.1
        server_port=port,  # None: GRADIO_SERVER_PORT, else 7860
        share=share,
        max_file_size=MAX_FILE_SIZE,
        allowed_paths=[str(EXAMPLES)],
        ssr_mode=False,
        run_history=False,  # the page keeps no record of past inputs
        mcp_server=mcp,
        css=CSS,
        head=HEAD,
        **kwargs,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the brain-tumour MRI classifier page, API and MCP tool.")
    parser.add_argument("--weights", default=None, help="weights folder or Hugging Face Hub id (default: every folder in weights/)")
    parser.add_argument("--host", default=None, help="interface to bind (default: $GRADIO_SERVER_NAME or 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default: $GRADIO_SERVER_PORT or 7860)")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link (off by default)")
    parser.add_argument("--no-mcp", action="store_true", help="do not serve the MCP tool")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        models = load_models(args.weights or os.environ.get("BRAIN_TUMOR_WEIGHTS"))
    except WeightsError as error:
        raise SystemExit(f"error: {error}") from None
    launch(build_app(models), args.host, args.port, args.share, mcp=not args.no_mcp)


if __name__ == "__main__":
    main()
