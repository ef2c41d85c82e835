"""Brain-tumour MRI classifier: a Gradio page over the brain_tumor package.

    python app.py [--weights DIR|HUB_ID] [--host H] [--port N] [--share]

Research use only; not a medical device.
"""
from __future__ import annotations

import argparse
import hashlib
import logging
import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
from gradio.utils import get_upload_folder, is_in_or_equal  # noqa: E402

from brain_tumor import DISPLAY_NAMES, Classifier, InvalidImageError, WeightsError, load_image  # noqa: E402
from brain_tumor.card import NOTICE, summary_line  # noqa: E402
from brain_tumor.weights import available_weights  # noqa: E402

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE / "examples"
MAX_FILE_SIZE = "25mb"
QUEUE_SIZE = 32
PREDICTED = "Predicted class"
EXAMPLE_DIGESTS = {hashlib.sha256(p.read_bytes()).hexdigest() for p in EXAMPLES.glob("*.jpg")}
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
    """The server-side file behind an image payload, refusing anything outside the upload
    cache or examples/ (raw payloads skip Gradio's own path check)."""
    if payload is None:
        return None
    path = payload.get("path") if isinstance(payload, dict) else getattr(payload, "path", payload)
    if not path:
        return None
    path = Path(path).resolve()
    if not (is_in_or_equal(path, get_upload_folder()) or is_in_or_equal(path, EXAMPLES)):
        raise gr.Error("That file is not an upload to this page; upload the image again.")
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


def _read(path: Path):
    try:
        return load_image(path)
    except InvalidImageError as error:
        raise gr.Error(str(error), print_exception=False) from None


def build_app(models: dict[str, Classifier]) -> gr.Blocks:
    names = list(models)
    target_choices = [PREDICTED] + [DISPLAY_NAMES[c] for c in models[names[0]].classes]
    by_display = {DISPLAY_NAMES[c]: c for c in models[names[0]].classes}

    def analyse(payload, target_name, opacity, model_name, session):
        path = _upload_path(payload)
        if path is None:
            return None, None, None
        model = models.get(model_name) or models[names[0]]
        try:
            if path.is_file():
                picture = _read(path)
            elif session and session["path"] == str(path):
                picture = session["image"]  # re-explaining an image already read and deleted
            else:
                raise gr.Error("This upload is no longer on the server; upload the image again.", print_exception=False)
            explanation = model.explain(picture, target=by_display.get(target_name))
        except gr.Error:
            raise
        except Exception:
            log.exception("analysis failed")
            raise gr.Error("Something went wrong analysing this image; please try another file.", print_exception=False) from None
        finally:
            _forget(path)
        confidences = {DISPLAY_NAMES[k]: v for k, v in explanation.prediction.probabilities.items()}
        return confidences, explanation.overlay_with(opacity), {"path": str(path), "image": picture, "explanation": explanation}

    def from_dicom(payload):
        """A .dcm upload, windowed to 8 bits, becomes the page's input image (then analysed)."""
        path = _upload_path(payload)
        if path is None:
            return gr.update(), None
        try:
            return _read(path), None
        finally:
            _forget(path)

    def warning(session):
        message = session and session["explanation"].prediction.warning
        return gr.update(value=f"⚠️ **{message}**" if message else "", visible=bool(message))

    def reblend(session, opacity):
        return None if session is None else session["explanation"].overlay_with(opacity)

    def describe(model_name):
        model = models.get(model_name) or models[names[0]]
        return f"**Model:** {summary_line(model.config)}"

    with gr.Blocks(title="Brain tumour MRI classifier", analytics_enabled=False, delete_cache=(300, 900)) as demo:
        gr.Markdown(
            "# Brain tumour MRI classifier\n"
            "Upload one axial brain MRI slice. The model gives its confidence for **glioma**, **meningioma**, "
            "**pituitary tumour** or **no tumour**, and a Grad-CAM heatmap of the regions that drove that answer."
        )
        gr.Markdown(f"⚠️ {NOTICE}", elem_id="notice")
        with gr.Row():
            with gr.Column():
                image = gr.Image(label="MRI slice", type="filepath", image_mode=None, sources=["upload", "clipboard"], height=360, format="png")
                dicom = gr.File(label="…or a DICOM file (.dcm)", file_types=[".dcm"])
                with gr.Row():
                    target = gr.Dropdown(target_choices, value=PREDICTED, label="Explain which class")
                    model_choice = gr.Dropdown(names, value=names[0], label="Model", visible=len(names) > 1)
                analyse_button = gr.Button("Analyse", variant="primary")
            with gr.Column():
                ood_warning = gr.Markdown(visible=False, elem_id="ood-warning")
                label = gr.Label(num_top_classes=4, label="Confidence per class", elem_id="confidences")
                overlay = gr.Image(label="Grad-CAM: where the model looked", type="pil", format="png", interactive=False, height=360, elem_id="overlay")
                opacity = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Heatmap opacity",
                                    info="Red: regions that most raised the score of the explained class; blue: little effect.")
        model_line = gr.Markdown(describe(names[0]), elem_id="model-line")
        gr.Examples(
            examples=[[str(p)] for p in sorted(EXAMPLES.glob("*.jpg"))],
            inputs=[image],
            label="Examples from the Testing split (no training twin); click one to analyse it",
            examples_per_page=8,
        )
        state = gr.State()  # this session's last image and explanation, in memory only
        gr.on(
            [image.change, analyse_button.click, target.change, model_choice.change],
            analyse,
            inputs=[image, target, opacity, model_choice, state],
            outputs=[label, overlay, state],
            api_name="predict",
            preprocess=False,  # our own loader reads the file: one-sentence errors, DICOM, 16-bit
            concurrency_limit=1,
        ).then(warning, state, ood_warning, api_visibility="private")
        dicom.upload(from_dicom, dicom, [image, dicom], api_visibility="private", preprocess=False)
        opacity.release(reblend, [state, opacity], overlay, api_visibility="private")
        model_choice.change(describe, model_choice, model_line, api_visibility="private")
    demo.queue(max_size=QUEUE_SIZE)
    return demo


def launch(demo: gr.Blocks, host: str | None = None, port: int | None = None, share: bool = False, **kwargs):
    return demo.launch(
        server_name=host,  # None: GRADIO_SERVER_NAME, else 127.0.0.1
        server_port=port,  # None: GRADIO_SERVER_PORT, else 7860
        share=share,
        max_file_size=MAX_FILE_SIZE,
        allowed_paths=[str(EXAMPLES)],
        ssr_mode=False,
        run_history=False,  # the page keeps no record of past inputs
        **kwargs,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the brain-tumour MRI classifier page.")
    parser.add_argument("--weights", default=None, help="weights folder or Hugging Face Hub id (default: every folder in weights/)")
    parser.add_argument("--host", default=None, help="interface to bind (default: $GRADIO_SERVER_NAME or 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default: $GRADIO_SERVER_PORT or 7860)")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link (off by default)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        models = load_models(args.weights or os.environ.get("BRAIN_TUMOR_WEIGHTS"))
    except WeightsError as error:
        raise SystemExit(f"error: {error}") from None
    launch(build_app(models), args.host, args.port, args.share)


if __name__ == "__main__":
    main()
