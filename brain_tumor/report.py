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


def _pdf_bytes(fig, title: str) -> bytes:
    """One matplotlib figure as a one-page PDF, titled, marked research use only."""
    from matplotlib.backends.backend_pdf import PdfPages

    buffer = io.BytesIO()
    with PdfPages(buffer, metadata={"Title": title, "Subject": "Research use only; not a medical device"}) as pdf:
        pdf.savefig(fig)
    return buffer.getvalue()


def report_pdf(explanation, model_line: str, weights_version: str, title: str = "Brain tumour MRI classifier") -> bytes:
    """The PDF bytes for one Explanation (A4 portrait)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import cm
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
    return _pdf_bytes(fig, title)


def draw_slice_probabilities(ax, result) -> None:
    """Each class's probability along the scan's slices (gaps where a slice lies outside the head), the
    out-of-distribution slices shaded and the key slice marked, on a matplotlib axes."""
    from brain_tumor.classes import CLASSES

    slices = np.arange(len(result.predictions))
    colours = {"glioma": "#dc2626", "meningioma": "#2563eb", "notumor": "#6b7280", "pituitary": "#16a34a"}
    for c in CLASSES:
        values = [np.nan if p is None else p.probabilities[c] for p in result.predictions]
        ax.plot(slices, values, label=DISPLAY_NAMES[c], color=colours.get(c), linewidth=1.6)
    for i, p in enumerate(result.predictions):
        if p is not None and p.out_of_distribution:
            ax.axvspan(i - 0.5, i + 0.5, color="#f59e0b", alpha=0.15, linewidth=0)
    ax.axvline(result.key_slice, color="black", linestyle="--", linewidth=1)
    ax.text(result.key_slice, 1.02, " key slice", fontsize="small", va="bottom")
    ax.set_xlim(-0.5, len(slices) - 0.5)
    ax.set_ylim(0, 1)
    ax.set_xlabel(f"slice ({result.volume.plane}); shaded: out of distribution; gaps: outside the head")
    ax.set_ylabel("probability")
    ax.legend(fontsize=8, ncols=4, loc="upper center", bbox_to_anchor=(0.5, -0.22), frameon=False)


def scan_report_pdf(result, model_line: str, title: str = "Brain tumour MRI classifier: whole scan") -> bytes:
    """The PDF bytes for one ScanResult (A4 portrait): the summary and its rule, the probabilities along the slices,
    the key slice with its heatmap, the next most tumour-like slices, notes, and the notice."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.27, 11.69))
    fig.text(0.07, 0.955, title, fontsize=16, weight="bold")
    fig.text(0.07, 0.932, f"{result.volume.describe()}; report made {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
             fontsize=8.5, color="0.3", wrap=True)
    fig.text(0.07, 0.90, result.summary, fontsize=12, weight="bold", wrap=True)
    fig.text(0.07, 0.865, f"Rule: {result.rule.describe()}", fontsize=7.5, wrap=True)
    plot_ax = fig.add_axes([0.1, 0.64, 0.82, 0.17])
    draw_slice_probabilities(plot_ax, result)
    explanation = result.key_explanation
    for k, (picture, name) in enumerate(((explanation.image, f"key slice {result.key_slice}"),
                                         (explanation.overlay, f"heatmap for {DISPLAY_NAMES[explanation.target]}"))):
        ax = fig.add_axes([0.07 + 0.45 * k, 0.33, 0.40, 0.24])
        ax.imshow(np.asarray(picture))
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    for k, index in enumerate([i for i in result.ranking if i != result.key_slice][:4]):
        ax = fig.add_axes([0.07 + 0.22 * k, 0.19, 0.19, 0.11])
        ax.imshow(np.asarray(result.picture(index)))
        ax.set_title(f"slice {index}: tumour {result.tumour_probability(index):.0%}", fontsize=7)
        ax.axis("off")
    notes = " ".join(result.volume.notes)
    fig.text(0.07, 0.165, f"{result.counts()}. {notes}", fontsize=8, wrap=True)
    fig.text(0.07, 0.135, result.rule.warning, fontsize=8, color="#b45309", wrap=True)
    fig.text(0.07, 0.105, f"Model: {model_line}  Weights version: {result.weights_version}", fontsize=7.5, wrap=True)
    fig.text(0.07, 0.05, NOTICE_PLAIN, fontsize=9.5, weight="bold", color="#991b1b", wrap=True)
    return _pdf_bytes(fig, title)
