"""A one-page PDF report of one analysis: the slice, the heatmap with its colour bar, the confidences,
the warning if any, the model and its weights version, the date and the not-a-medical-device notice.

Made in memory from the analysis; the upload itself is never written anywhere to make it.
"""
from __future__ import annotations

import datetime
import io

import numpy as np

from brain_tumor.card import NOTICE_PLAIN
from brain_tumor.classes import DISPLAY_NAMES


def report_pdf(explanation, model_line: str, weights_version: str, title: str = "Brain tumour MRI classifier") -> bytes:
    """The PDF bytes for one Explanation (A4 portrait)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import cm
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure

    prediction = explanation.prediction
    fig = Figure(figsize=(8.27, 11.69))
    fig.text(0.07, 0.955, title, fontsize=17, weight="bold")
    fig.text(0.07, 0.93, f"Report made {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}", fontsize=9, color="0.3")
    headline = prediction.warning or (f"{DISPLAY_NAMES.get(prediction.label, prediction.label)}: "
                                      f"{prediction.confidence:.1%} confidence")
    fig.text(0.07, 0.895, headline, fontsize=12 if prediction.warning else 15, weight="bold",
             color="#b45309" if prediction.warning else "black", wrap=True)

    image_ax = fig.add_axes([0.07, 0.53, 0.40, 0.33])
    image_ax.imshow(np.asarray(explanation.image))
    image_ax.set_title("Slice", fontsize=10)
    image_ax.axis("off")
    overlay_ax = fig.add_axes([0.52, 0.53, 0.40, 0.33])
    overlay_ax.imshow(np.asarray(explanation.overlay))
    overlay_ax.set_title(f"Heatmap for {DISPLAY_NAMES.get(explanation.target, explanation.target)} "
                         f"({explanation.method} at {explanation.layer})", fontsize=9)
    overlay_ax.axis("off")
    bar_ax = fig.add_axes([0.52, 0.515, 0.40, 0.012])
    bar = fig.colorbar(cm.ScalarMappable(cmap="jet"), cax=bar_ax, orientation="horizontal")
    bar.set_ticks([0, 1], labels=["little effect", "raised the score most"])
    bar.ax.tick_params(labelsize=8)

    bars_ax = fig.add_axes([0.30, 0.30, 0.62, 0.17])
    names = [DISPLAY_NAMES.get(c, c) for c in prediction.probabilities][::-1]
    values = list(prediction.probabilities.values())[::-1]
    bars_ax.barh(names, values, color=["#1d4ed8" if n == DISPLAY_NAMES.get(prediction.label) else "#93c5fd" for n in names])
    for y, v in enumerate(values):
        bars_ax.text(min(v + 0.01, 0.9), y, f"{v:.1%}", va="center", fontsize=9)
    bars_ax.set_xlim(0, 1)
    bars_ax.set_title("Confidence per class", fontsize=10)
    bars_ax.tick_params(labelsize=9)

    fig.text(0.07, 0.22, f"Model: {model_line}", fontsize=8.5, wrap=True)
    fig.text(0.07, 0.185, f"Weights version (sha256 prefix): {weights_version}", fontsize=8.5, family="monospace")
    fig.text(0.07, 0.08, NOTICE_PLAIN, fontsize=10, weight="bold", color="#991b1b", wrap=True)
    buffer = io.BytesIO()
    with PdfPages(buffer, metadata={"Title": title, "Subject": "Research use only; not a medical device"}) as pdf:
        pdf.savefig(fig)
    return buffer.getvalue()
