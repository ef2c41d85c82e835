"""Do the heatmaps point at the tumour? Score a model's explanations on slices with tumour boxes:
`python -m training.evaluate_cam --weights DIR --boxes DIR --out DIR [--method M] [--layer L] [--compare]`.

For each slice, the map of its true class is scored by the pointing game (is its maximum inside
the box?) and by the energy ratio (share of the map inside the box ÷ the box's share of the
image), beside the same two for a blind guess (a Gaussian at the centre of the head), per class
and overall, with 95% bootstrap intervals. Faithfulness: blurring away the hottest pixels should
lower the class's probability more than blurring away random pixels.

--part picks the slices: 'eval' (the default, kept out of all training and selection), 'train'
(the part training and choosing a method may use) or 'all'. --compare scores every method at
every candidate layer; with --write-config it stores the chosen one as the model's default, which
is only allowed on --part train. The choice: of the offered methods whose pointing game lies within
the 95% interval of the best one's, the cheapest to explain (the deepest layers: explaining an
earlier layer backpropagates through every later stage), then the best pointing game.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from brain_tumor.classes import CLASSES, DISPLAY_NAMES
from brain_tumor.classifier import Classifier
from brain_tumor.errors import exit_status
from brain_tumor.explain import METHODS, OFFERED, class_activation_maps, run_stages
from brain_tumor.models import get_architecture
from brain_tumor.preprocess import normalize
from training import plots
from training.boxes import PARTS, BoxedSlice, read_boxes
from training.data import DEFAULT_CACHE, DatasetError, cache_folder, decode_images
from training.localisation import (
    deletion_drops,
    head_prior,
    random_maps,
    score_maps,
    summarise,
)
from training.records import record_localisation

FRACTIONS = (0.1, 0.3)  # shares of the image blurred away for the faithfulness measure


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default=None, help="weights folder or Hub id (default: the shipped weights)")
    p.add_argument("--boxes", default="../shared/data/figshare-tumour-boxes", help="folder with boxes.csv and the slices")
    p.add_argument("--out", default="cam-report", help="where metrics.json, grid.png, slices.csv and summary.md go")
    p.add_argument("--part", choices=PARTS, default="eval", help="which slices: kept for evaluation, usable for training, or all")
    p.add_argument("--method", choices=sorted(METHODS), default=None, help="explanation method (default: the weights' own)")
    p.add_argument("--layer", default=None, help="layer(s) to explain, e.g. layer4 or layer3+layer4 (default: the weights' own)")
    p.add_argument("--max-per-class", type=int, default=None, help="use at most this many slices of each class")
    p.add_argument("--faithfulness-n", type=int, default=60, help="slices (spread over the classes) for the faithfulness measure; 0 skips it")
    p.add_argument("--compare", action="store_true", help="score every method at every candidate layer and write compare.md")
    p.add_argument("--methods", nargs="+", choices=sorted(METHODS), default=sorted(METHODS),
                   help="the methods --compare scores (EigenCAM's full SVD is slow on large maps, e.g. the baseline's block2)")
    p.add_argument("--write-config", action="store_true",
                   help="store the figures (and with --compare, the chosen method as the default) in the weights folder")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--cache-dir", default=str(DEFAULT_CACHE), help="decoded-image cache ('' to disable)")
    return p


def select(slices: list[BoxedSlice], per_class: int | None) -> list[BoxedSlice]:
    if not per_class:
        return slices
    return [s for c in range(len(CLASSES)) for s in [s for s in slices if s.label == c][:per_class]]


def spread(n: int, total: int) -> np.ndarray:
    """Indices of about n items evenly spread over 0..total-1 (slices are sorted by class)."""
    return np.unique(np.linspace(0, total - 1, min(n, total)).round().astype(int)) if n > 0 and total else np.array([], dtype=int)


Combo = tuple[str, tuple[str, ...]]  # (method, layers)


def explain_all(classifier: Classifier, images: torch.Tensor, labels: np.ndarray, boxes: list, combos: list[Combo],
                keep: np.ndarray, batch_size: int) -> dict[Combo, dict]:
    """For every (method, layers): pointing hits, energy ratios, predictions over all images, and the
    maps of the images in `keep`. The network below the earliest explained layer runs once per batch."""
    config, side = classifier.config, images.shape[-1]
    stages = [name for name, _ in get_architecture(config.architecture).stages(classifier.model)]
    first = min((name for _, layers in combos for name in layers), key=stages.index)
    out = {combo: {"hits": [], "ratios": [], "predicted": [], "maps": []} for combo in combos}
    for begin in tqdm(range(0, len(images), batch_size), desc=f"{len(combos)} heatmap kinds", leave=False):
        end = min(begin + batch_size, len(images))
        targets = labels[begin:end]
        outputs = {first: run_stages(classifier.model, config.architecture, normalize(images[begin:end], config.mean, config.std), None, first)}
        chosen = keep[(keep >= begin) & (keep < end)] - begin
        for combo in combos:
            method, layers = combo
            cut = min(layers, key=stages.index)
            if cut not in outputs:
                outputs[cut] = run_stages(classifier.model, config.architecture, outputs[first], first, cut)
            maps, logits = class_activation_maps(classifier.model, config.architecture, outputs[cut], targets, method, layers,
                                                 start=cut, size=(side, side))
            hits, ratios = score_maps(maps, boxes[begin:end])
            entry = out[combo]
            entry["hits"].append(hits)
            entry["ratios"].append(ratios)
            entry["predicted"].append(logits.argmax(1).numpy())
            entry["maps"].append(maps[chosen])
    return {combo: {key: np.concatenate(values) for key, values in entry.items()} for combo, entry in out.items()}


def per_class(values: dict[str, np.ndarray], labels: np.ndarray) -> dict:
    out = {}
    for c, name in enumerate(CLASSES):
        mask = labels == c
        if mask.any():
            out[name] = {"n": int(mask.sum()), **{key: float(v[mask].mean()) for key, v in values.items()}}
    return out


def map_side(classifier: Classifier, layers: tuple[str, ...], side: int) -> int:
    """Cells per side of the finest explained layer's map, for random maps as coarse as the heatmap."""
    architecture = classifier.config.architecture
    return max(run_stages(classifier.model, architecture, torch.zeros(1, 3, side, side), None, name).shape[-1] for name in layers)


def score(classifier: Classifier, images: torch.Tensor, slices: list[BoxedSlice], combos: list[Combo], faithful: np.ndarray,
          keep: np.ndarray, batch_size: int) -> tuple[list[dict], dict[Combo, np.ndarray]]:
    """The metrics of every (method, layers), and the maps of the slices in `keep` (sorted; it holds `faithful`)."""
    labels = np.array([s.label for s in slices])
    config, side = classifier.config, images.shape[-1]
    results = explain_all(classifier, images, labels, [s.box_at(side) for s in slices], combos, keep, batch_size)
    at = np.searchsorted(keep, faithful)
    batch = normalize(images[torch.from_numpy(faithful)], config.mean, config.std) if len(faithful) else None
    random_drop: dict[int, np.ndarray] = {}
    rows = []
    for combo, r in results.items():
        method, layers = combo
        hits, ratios, right = r["hits"], r["ratios"], (r["predicted"] == labels).astype(float)
        metrics = {
            "method": method, "layer": "+".join(layers), "n": len(slices),
            "pointing_game": float(hits.mean()), "pointing_game_ci95": summarise(hits)["ci95"],
            "energy_ratio": float(ratios.mean()), "energy_ratio_ci95": summarise(ratios)["ci95"],
            "accuracy": float(right.mean()),
            "per_class": per_class({"pointing_game": hits, "energy_ratio": ratios, "accuracy": right}, labels),
        }
        if batch is not None:
            grid = map_side(classifier, layers, side)
            with torch.no_grad():
                cam = deletion_drops(classifier.model, batch, r["maps"][at], labels[faithful], FRACTIONS, side / 16).mean(axis=0)
                if grid not in random_drop:
                    noise = random_maps(r["maps"][at].shape, grid, seed=0)
                    random_drop[grid] = deletion_drops(classifier.model, batch, noise, labels[faithful], FRACTIONS, side / 16).mean(axis=0)
            noise = random_drop[grid]
            metrics["faithfulness"] = {
                "n": len(faithful), "fractions": list(FRACTIONS), "imputation": "Gaussian blur, σ = side/16",
                "drop_heatmap": float(cam.mean()), "drop_random": float(noise.mean()),
                "gap": float((cam - noise).mean()), "gap_ci95": summarise(cam - noise)["ci95"],
            }
        metrics["hits"] = hits
        rows.append(metrics)
    return rows, {combo: r["maps"] for combo, r in results.items()}


def prior_metrics(images: torch.Tensor, slices: list[BoxedSlice]) -> tuple[dict, np.ndarray]:
    side = images.shape[-1]
    maps = np.stack([head_prior(image) for image in images.permute(0, 2, 3, 1).numpy()])
    hits, ratios = score_maps(maps, [s.box_at(side) for s in slices])
    labels = np.array([s.label for s in slices])
    return {
        "description": "a Gaussian at the centroid of the head (largest bright region), σ half its equivalent radius",
        "pointing_game": float(hits.mean()), "pointing_game_ci95": summarise(hits)["ci95"],
        "energy_ratio": float(ratios.mean()), "energy_ratio_ci95": summarise(ratios)["ci95"],
        "per_class": per_class({"pointing_game": hits, "energy_ratio": ratios}, labels),
    }, hits


def _ci(values: list[float], scale: float = 1.0, fmt: str = "{:.2f}") -> str:
    return f"[{fmt.format(values[0] * scale)}, {fmt.format(values[1] * scale)}]"


def summary_markdown(metrics: dict) -> str:
    m, prior = metrics, metrics["prior"]
    lines = [
        f"# Where does `{m['weights']}` look?", "",
        f"{m['n']} figshare slices with tumour boxes (part: {m['part']}), heatmap of the true class by **{m['method']}** at "
        f"**{m['layer']}**. Class right on {100 * m['accuracy']:.1f}% of them.", "",
        "| | pointing game (95% CI) | energy ratio (95% CI) |", "| --- | --- | --- |",
        f"| {m['method']} @ {m['layer']} | {m['pointing_game']:.2f} {_ci(m['pointing_game_ci95'])} | "
        f"{m['energy_ratio']:.1f}× {_ci(m['energy_ratio_ci95'], fmt='{:.1f}')} |",
        f"| blind prior: Gaussian at the head's centre | {prior['pointing_game']:.2f} {_ci(prior['pointing_game_ci95'])} | "
        f"{prior['energy_ratio']:.1f}× {_ci(prior['energy_ratio_ci95'], fmt='{:.1f}')} |", "",
        "| class | n | pointing game | energy ratio | prior pointing | prior energy | class right |", "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, c in m["per_class"].items():
        p = prior["per_class"][name]
        lines.append(f"| {DISPLAY_NAMES[name]} | {c['n']} | {c['pointing_game']:.2f} | {c['energy_ratio']:.1f}× | "
                     f"{p['pointing_game']:.2f} | {p['energy_ratio']:.1f}× | {100 * c['accuracy']:.1f}% |")
    f = m.get("faithfulness")
    if f:
        lines += ["", f"**Faithfulness** ({f['n']} slices): blurring away the hottest {', '.join(f'{int(100 * x)}%' for x in f['fractions'])} "
                  f"of the image lowers the class probability by {f['drop_heatmap']:.3f} on average, random cells of the same size by "
                  f"{f['drop_random']:.3f}: a gap of {f['gap']:+.3f} {_ci(f['gap_ci95'], fmt='{:+.3f}')}. A positive gap means the map "
                  "marks pixels the model relies on."]
    lines += ["", "Pointing game: the share of slices whose heatmap maximum lies inside the tumour box. Energy ratio: the "
              "heatmap's share inside the box divided by the box's share of the image (1× is no better than a flat map).",
              "", "![slices with boxes and heatmaps](grid.png)", ""]
    return "\n".join(lines)


def choose_default(rows: list[dict], architecture: str) -> dict:
    """The row to use by default, from rows sorted best first: of the offered methods within the best
    one's 95% interval of the pointing game, the one whose earliest explained layer is deepest (the
    shortest backward pass, so the cheapest explanation), then the best pointing game."""
    order = get_architecture(architecture).cam_layers
    offered = [r for r in rows if r["method"] in OFFERED]
    if not offered:
        raise DatasetError(f"--compare scored none of the offered methods ({', '.join(OFFERED)}).")
    floor = offered[0]["pointing_game_ci95"][0]
    close = [r for r in offered if r["pointing_game"] >= floor]
    return min(close, key=lambda r: -min(order.index(layer) for layer in r["layer"].split("+")))


def compare_markdown(rows: list[dict], prior: dict, best: dict) -> str:
    lines = ["| method | layer | pointing game (95% CI) | energy ratio | faithfulness gap |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        gap = r.get("faithfulness", {}).get("gap")
        lines.append(f"| {r['method']} | {r['layer']} | {r['pointing_game']:.2f} {_ci(r['pointing_game_ci95'])} | {r['energy_ratio']:.1f}× | "
                     f"{'–' if gap is None else f'{gap:+.3f}'} |")
    lines.append(f"| blind prior | – | {prior['pointing_game']:.2f} {_ci(prior['pointing_game_ci95'])} | {prior['energy_ratio']:.1f}× | – |")
    top = next(r for r in rows if r["method"] in OFFERED)
    lines += ["", f"Best by pointing game, then energy ratio: {top['method']} @ {top['layer']}. Chosen as the default: "
              f"**{best['method']} @ {best['layer']}**, the cheapest to explain of the offered methods whose pointing game "
              f"is within the best one's 95% interval ({top['pointing_game_ci95'][0]:.2f} or more).", ""]
    return "\n".join(lines)


def grid_indices(labels: np.ndarray, per_class: int = 5) -> np.ndarray:
    """The slices the figure shows: per class, `per_class` spread over that class."""
    chosen = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        chosen += members[np.linspace(0, len(members) - 1, min(per_class, len(members))).round().astype(int)].tolist()
    return np.unique(chosen)


def candidate_layers(architecture: str) -> list[tuple[str, ...]]:
    names = get_architecture(architecture).cam_layers
    return [(name,) for name in names] + ([tuple(names)] if len(names) > 1 else [])


def evaluate_cam(args: argparse.Namespace) -> dict:
    classifier = Classifier.from_pretrained(args.weights, backend="torch")
    config = classifier.config
    if args.compare and args.write_config and args.part != "train":
        raise DatasetError("Choosing a default method with --compare --write-config must use --part train; "
                           "the evaluation part only reports.")
    slices = select(read_boxes(args.boxes, args.part), args.max_per_class)
    if not slices:
        raise DatasetError(f"No boxed slices in part {args.part!r} of {args.boxes}.")
    cache = cache_folder(args.cache_dir)
    images = decode_images([s.path for s in slices], config.image_size, config.clahe, cache_dir=cache, desc="boxes")
    faithful = spread(args.faithfulness_n, len(slices))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    prior, prior_hits = prior_metrics(images, slices)
    common = {"weights": str(classifier.source), "boxes": str(args.boxes), "part": args.part, "image_size": config.image_size}

    labels = np.array([s.label for s in slices])
    shown = grid_indices(labels)
    keep = np.union1d(faithful, shown)
    if args.compare:
        combos = [(method, layers) for layers in candidate_layers(config.architecture) for method in args.methods]
    else:
        combos = [classifier.explain_settings(args.method, args.layer)]
    rows, kept_maps = score(classifier, images, slices, combos, faithful, keep, args.batch_size)
    rows.sort(key=lambda r: (-r["pointing_game"], -r["energy_ratio"]))
    metrics = choose_default(rows, config.architecture) if args.compare else rows[0]
    method, layers = metrics["method"], tuple(metrics["layer"].split("+"))
    hits = metrics["hits"]
    for row in rows:
        row.pop("hits")
    if args.compare:
        (out / "compare.json").write_text(json.dumps({**common, "rows": rows, "prior": prior, "best": {"method": method, "layer": metrics["layer"]}}, indent=2) + "\n")
        (out / "compare.md").write_text(compare_markdown(rows, prior, metrics))
        plots.compare_plot(rows, prior, out / "compare.png", f"{config.architecture}: {len(slices)} boxed slices ({args.part})")
        print(compare_markdown(rows, prior, metrics))
    metrics.update(common, prior=prior)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    write_slices_csv(out / "slices.csv", slices, hits, prior_hits)
    maps = kept_maps[(method, layers)][np.searchsorted(keep, shown)]
    plots.box_grid(images[torch.from_numpy(shown)].permute(0, 2, 3, 1).numpy(), maps, [slices[i].box_at(config.image_size) for i in shown],
                   labels[shown], hits[shown], out / "grid.png", f"{config.architecture}, {method} @ {metrics['layer']}")
    (out / "summary.md").write_text(summary_markdown(metrics))
    if args.write_config:
        chosen = {"method": method, "layer": metrics["layer"]} if args.compare else None
        record_localisation(Path(classifier.source), metrics, chosen)
    print(f"{config.architecture} {method} @ {metrics['layer']} on {metrics['n']} boxed slices ({args.part}): "
          f"pointing game {metrics['pointing_game']:.2f} {_ci(metrics['pointing_game_ci95'])}, energy ratio {metrics['energy_ratio']:.1f}× | "
          f"prior: {prior['pointing_game']:.2f}, {prior['energy_ratio']:.1f}×" +
          (f" | faithfulness gap {metrics['faithfulness']['gap']:+.3f}" if "faithfulness" in metrics else ""))
    print(f"report: {out / 'summary.md'}")
    return {**metrics, "compare": rows} if args.compare else metrics


def write_slices_csv(path: Path, slices: list[BoxedSlice], hits: np.ndarray, prior_hits: np.ndarray) -> None:
    lines = ["path,label,number,part,hit,prior_hit"]
    lines += [f"{s.path},{CLASSES[s.label]},{s.number},{s.part},{int(h)},{int(p)}" for s, h, p in zip(slices, hits, prior_hits)]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    return exit_status(lambda: evaluate_cam(get_args_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
