"""What does a model rely on? `python -m training.diagnose --weights DIR [--out DIR]`.

Accuracy when the cues a shortcut would use are taken away, and where the heatmap's mass lies:
- clean Testing images as they are, with everything outside the head blacked out, and cropped to
  the head (which removes its size, position and the black frame);
- boxed figshare slices (evaluation part) as they are, and with the tumour box blanked: filled with
  the head's median grey, blurred away, or inpainted from its surroundings (cv2.inpaint; three fills,
  so a model that learnt to spot one kind of patch is still caught): if the class survives without the
  lesion, the lesion is not what the model uses;
- the share of the heatmap's mass outside the head, per class;
- accuracy per file-name family of the Kaggle test images (a proxy for their source collection).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from brain_tumor.classes import CLASSES
from brain_tumor.classifier import Classifier
from brain_tumor.errors import exit_status
from brain_tumor.explain import class_activation_maps
from brain_tumor.preprocess import normalize
from training import twins
from training.boxes import box_mask, read_boxes
from training.data import DEFAULT_CACHE, cache_folder, decode_images, load_run_data, split_recipe_of
from training.localisation import head_mask
from training.report import predict_logits


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default=None, help="weights folder (default: the shipped weights)")
    p.add_argument("--data", default=None, help="the Kaggle dataset (default: the one the weights' recipe names)")
    p.add_argument("--boxes", default="../shared/data/figshare-tumour-boxes", help="figshare slices with boxes.csv")
    p.add_argument("--out", default="diagnosis", help="where diagnosis.json and diagnosis.md go")
    p.add_argument("--cache-dir", default=str(DEFAULT_CACHE), help="decoded-image cache ('' to disable)")
    return p


def masked_outside_head(images: np.ndarray) -> np.ndarray:
    return np.stack([image * head_mask(image)[..., None] for image in images])


def cropped_to_head(images: np.ndarray) -> np.ndarray:
    out = []
    for image in images:
        ys, xs = np.nonzero(head_mask(image))
        crop = image[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
        side = max(crop.shape[:2])  # pad to a square first, so the head keeps its shape
        square = np.zeros((side, side, 3), np.uint8)
        top, left = (side - crop.shape[0]) // 2, (side - crop.shape[1]) // 2
        square[top:top + crop.shape[0], left:left + crop.shape[1]] = crop
        out.append(cv2.resize(square, image.shape[1::-1], interpolation=cv2.INTER_AREA))
    return np.stack(out)


FILLS = {"grey": "tumour_box_blanked", "blur": "tumour_box_blurred", "inpaint": "tumour_box_inpainted"}


def box_blanked(images: np.ndarray, boxes: list, fill: str = "grey") -> np.ndarray:
    """The slices with each tumour box taken away: filled with the head's median grey, replaced by a strong
    blur of the slice (σ the box's longer side), or inpainted from the box's surroundings (Telea)."""
    out = images.copy()
    for image, box in zip(out, boxes):
        inside, head = box_mask(box, image.shape[0]), head_mask(image)
        if fill == "grey":
            image[inside] = np.median(image[head & ~inside], axis=0) if (head & ~inside).any() else 0
        elif fill == "blur":
            sigma = max(box[2] - box[0], box[3] - box[1])
            image[inside] = cv2.GaussianBlur(image, (0, 0), max(sigma, 1.0))[inside]
        else:
            grown = cv2.dilate(inside.astype(np.uint8), np.ones((3, 3), np.uint8))  # the box's edge too
            image[:] = cv2.inpaint(image, grown, 5, cv2.INPAINT_TELEA)
    return out


def predicted(classifier: Classifier, images: np.ndarray) -> np.ndarray:
    tensor = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    return predict_logits(classifier.model, tensor, classifier.config, progress=True).argmax(1).numpy()


def accuracy(classifier: Classifier, images: np.ndarray, labels: np.ndarray) -> float:
    return float((predicted(classifier, images) == labels).mean())


def outside_head_share(classifier: Classifier, images: np.ndarray, labels: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """Share of each true-class heatmap's mass outside the head."""
    config, shares = classifier.config, []
    for start in tqdm(range(0, len(images), batch_size), desc="heatmaps", leave=False):
        chunk = images[start:start + batch_size]
        batch = normalize(torch.from_numpy(np.ascontiguousarray(chunk.transpose(0, 3, 1, 2))), config.mean, config.std)
        method, layers = classifier.explain_settings()
        maps, _ = class_activation_maps(classifier.model, config.architecture, batch, labels[start:start + batch_size], method, layers)
        for heatmap, image in zip(maps, chunk):
            shares.append(float(heatmap[~head_mask(image)].sum() / max(heatmap.sum(), 1e-9)))
    return np.asarray(shares)


def fills(row: dict) -> str:
    return " / ".join(f"{row[key]:.2%}" for key in FILLS.values())


def diagnose(args: argparse.Namespace) -> dict:
    classifier = Classifier.from_pretrained(args.weights, backend="torch")
    config = classifier.config
    cache = cache_folder(args.cache_dir)
    data = load_run_data(split_recipe_of(classifier.config, args.data), cache)
    clean = twins.clean_mask(twins.thumbnails(data.test_images), data.pool_thumbs)
    test = data.test_images[torch.from_numpy(np.flatnonzero(clean))].permute(0, 2, 3, 1).numpy()
    labels = data.test.labels[clean]
    slices = read_boxes(args.boxes, "eval")
    boxed = decode_images([s.path for s in slices], config.image_size, config.clahe, cache_dir=cache, desc="boxes").permute(0, 2, 3, 1).numpy()
    box_labels = np.array([s.label for s in slices])
    boxes = [s.box_at(config.image_size) for s in slices]

    result = {"weights": str(classifier.source), "n_clean_test": int(len(labels)), "n_boxed": len(slices)}
    as_is = predicted(classifier, test)
    result["clean_test"] = {"as_is": float((as_is == labels).mean()), "outside_head_blacked": accuracy(classifier, masked_outside_head(test), labels),
                            "cropped_to_head": accuracy(classifier, cropped_to_head(test), labels)}
    right = {"as_is": predicted(classifier, boxed) == box_labels}
    for fill, key in FILLS.items():
        right[key] = predicted(classifier, box_blanked(boxed, boxes, fill)) == box_labels
    result["boxed"] = {**{key: float(hits.mean()) for key, hits in right.items()},
                       "per_class": {CLASSES[c]: {"n": int((box_labels == c).sum()), **{key: float(hits[box_labels == c].mean()) for key, hits in right.items()}}
                                     for c in np.unique(box_labels)}}
    shares = outside_head_share(classifier, test, labels)
    result["heatmap_mass_outside_head"] = {CLASSES[c]: float(shares[labels == c].mean()) for c in np.unique(labels)}
    names = [re.sub(r"\d+", "", p.stem) for p, keep in zip(data.test.paths, clean) if keep]
    result["per_file_family"] = {family: {"n": int(sum(n == family for n in names)),
                                          "accuracy": float(np.mean([p == t for p, t, n in zip(as_is, labels, names) if n == family]))}
                                 for family in sorted(set(names))}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "diagnosis.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# What `{result['weights']}` relies on", "", "| images | as they are | changed | accuracy then |", "| --- | --- | --- | --- |",
             f"| {result['n_clean_test']} clean Testing images | {result['clean_test']['as_is']:.2%} | outside the head blacked out | {result['clean_test']['outside_head_blacked']:.2%} |",
             f"| | | cropped to the head | {result['clean_test']['cropped_to_head']:.2%} |",
             f"| {result['n_boxed']} boxed figshare slices (evaluation part) | {result['boxed']['as_is']:.2%} | "
             f"tumour box blanked (grey / blurred / inpainted) | {fills(result['boxed'])} |"]
    lines += [f"| {v['n']} of them {k} | {v['as_is']:.2%} | tumour box blanked | {fills(v)} |" for k, v in result["boxed"]["per_class"].items()]
    lines += ["", "Share of the heatmap's mass outside the head (clean Testing images): " +
              ", ".join(f"{k} {v:.1%}" for k, v in result["heatmap_mass_outside_head"].items()), "",
              "| file-name family (Testing, clean) | n | accuracy |", "| --- | --- | --- |"]
    lines += [f"| `{k}` | {v['n']} | {v['accuracy']:.2%} |" for k, v in result["per_file_family"].items()]
    (out / "diagnosis.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return result


def main(argv: list[str] | None = None) -> int:
    return exit_status(lambda: diagnose(get_args_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
