"""Teaching a model where to look: tumour boxes carried onto training images, the data a box-supervised
run adds (training.fit --boxes), and the losses and scores on where a model looks.

figshare is one of the sources of the Kaggle set, so a boxed figshare slice often has a near-identical
twin in Kaggle's Training split; the twin inherits the box, scaled to its own pixels. For a pool followed
by a linear layer, Grad-CAM at the pooled map equals CAM (Zhou et al., 2016): relu(Σ_k w_ck A_k),
differentiable without a second backward pass.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from brain_tumor.classes import CLASSES
from brain_tumor.config import ModelConfig
from brain_tumor.models import get_architecture
from brain_tumor.preprocess import normalize
from training import twins
from training.boxes import BoxedSlice, box_mask, box_validation_split, read_boxes
from training.data import RunData, decode_images
from training.frozen import Inputs, forward_from, take
from training.localisation import score_maps

# The box-validation figures an epoch or a run can be chosen by: the whole box validation, or its slices with no twin
# among the Training images (new patients' slices only); each name is its column in a run's metrics.csv.
POINTING = {"pointing": "val_pointing", "pointing_new": "val_pointing_new"}


def carry_boxes(slices: list[BoxedSlice], slice_images: torch.Tensor, labels: np.ndarray, thumbs: torch.Tensor,
                threshold: float = twins.DEFAULT_THRESHOLD) -> dict[int, tuple[float, float, float, float]]:
    """{index into the images behind `thumbs`: box in their pixels} for each image that is a twin
    (Pearson r ≥ threshold) of a boxed slice with the same label; the best-matching slice wins."""
    side = slice_images.shape[-1]
    if not len(slices) or not len(thumbs):
        return {}
    corr = twins.thumbnails(slice_images) @ thumbs.T  # slices × images
    found: dict[int, tuple[float, tuple]] = {}
    for i, j in zip(*torch.nonzero(corr >= threshold, as_tuple=True)):
        i, j = int(i), int(j)
        if labels[j] != slices[i].label:
            continue  # a twin with another label is a labelling conflict, not a box to trust
        r = float(corr[i, j])
        if j not in found or r > found[j][0]:
            found[j] = (r, slices[i].box_at(side))
    return {j: box for j, (_, box) in found.items()}


def masks_for(boxes: dict[int, tuple], count: int, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(count×side×side uint8 masks, 1 inside the box; count bools saying which have a box)."""
    masks = torch.zeros(count, side, side, dtype=torch.uint8)
    has = torch.zeros(count, dtype=torch.bool)
    for j, box in boxes.items():
        masks[j] = torch.from_numpy(box_mask(box, side))
        has[j] = True
    return masks, has


@dataclasses.dataclass
class BoxData:
    """What --boxes adds to a run: a mask for each training image that has one (a box carried from a twin,
    or an empty map for a no-tumour image), boxed slices to train on, and the box validation."""
    train_masks: torch.Tensor  # len(train)×S×S uint8
    train_has_mask: torch.Tensor  # len(train) bool
    extra_images: torch.Tensor  # the training band's slices (less any twin of a validation image)
    extra_labels: np.ndarray
    extra_masks: torch.Tensor
    val_images: torch.Tensor | None  # box validation: the top band of the train part's file numbers (None: a refit)
    val_labels: np.ndarray | None
    val_boxes: list[tuple[float, float, float, float]] | None
    val_new: np.ndarray | None  # bool: the box-validation slices with no near-identical twin among the Training images
    notes: dict


def trained_thumbnails(data: RunData, boxes: BoxData | None) -> torch.Tensor:
    """Thumbnails of every image a run learnt from (the Training pool, and the boxed slices it trained on): the
    reference whose twins the clean test subset leaves out."""
    return data.pool_thumbs if boxes is None else torch.cat([data.pool_thumbs, twins.thumbnails(boxes.extra_images)])


def load_box_data(folder: str | Path, data: RunData, side: int, clahe: bool, threshold: float, cache_dir: Path | None,
                  mirrored: bool = False, refit: bool = False) -> BoxData:
    """The train part of the boxed slices (training.boxes; the evaluation part is never read) turned into masks
    for the run's training images, slices to train on, and the box validation (a band of file numbers, so
    other patients; training.boxes.box_validation_split). Only slices of the training band lend their box to
    a twin, and slices with a twin among the validation images are left out. With `mirrored`, each boxed slice
    trained on comes twice: as it is and mirrored left to right with its box (augmentation a frozen-trunk run,
    which caches features, cannot do at each step). With `refit`, the whole train part teaches the gate (the box
    validation and the guard band before it too) and there is no box validation: what more boxes give, measured
    once a recipe has been chosen on the box validation."""
    fit, held = (read_boxes(folder, "train"), []) if refit else box_validation_split(read_boxes(folder, "train"))
    decode = lambda slices, name: decode_images([s.path for s in slices], side, clahe, cache_dir=cache_dir, desc=name)  # noqa: E731
    images = decode(fit, "boxes-all" if refit else "boxes-fit")
    labels = np.array([s.label for s in fit], dtype=np.int64)
    carried = carry_boxes(fit, images, data.train.labels, twins.thumbnails(data.train_images), threshold)
    train_masks, has = masks_for(carried, len(data.train), side)
    has |= torch.from_numpy(data.train.labels == CLASSES.index("notumor"))  # no tumour: an empty map
    near_val = (~twins.clean_mask(twins.thumbnails(images), twins.thumbnails(data.val_images), threshold)
                if data.val_images is not None else np.zeros(len(fit), dtype=bool))
    extra = np.flatnonzero(~near_val)
    extra_masks, _ = masks_for({i: fit[j].box_at(side) for i, j in enumerate(extra)}, len(extra), side)
    extra_images, extra_labels = images[torch.from_numpy(extra)], labels[extra]
    if mirrored:
        extra_images = torch.cat([extra_images, extra_images.flip(-1)])
        extra_labels, extra_masks = np.concatenate([extra_labels, extra_labels]), torch.cat([extra_masks, extra_masks.flip(-1)])
    notes = {"boxed_slices_trained_on": len(extra), "mirrored": mirrored, "boxes_carried_to_training_images": len(carried),
             "boxed_slices_left_out_as_twins_of_validation": int(near_val.sum()), "refit": refit, "box_validation": len(held)}
    if refit:
        return BoxData(train_masks, has, extra_images, extra_labels, extra_masks, None, None, None, None, notes)
    held_images = decode(held, "boxes-val")
    new = twins.clean_mask(twins.thumbnails(held_images), data.pool_thumbs, threshold)
    notes["box_validation_without_training_twin"] = int(new.sum())
    return BoxData(train_masks, has, extra_images, extra_labels, extra_masks,
                   held_images, np.array([s.label for s in held], dtype=np.int64), [s.box_at(side) for s in held], new, notes)


@torch.no_grad()
def pseudo_boxes(teacher: torch.nn.Module, config: ModelConfig, inputs: Inputs, labels: np.ndarray, skip: torch.Tensor,
                 start: str | None, min_prob: float = 0.9, min_gate: float = 0.5, batch_size: int = 256) -> dict[int, tuple]:
    """{index: box in pixels of side×side} for the tumour images (not `skip`ped) on which a gated `teacher` is sure:
    its calibrated probability of the image's own class ≥ min_prob and its gate's peak ≥ min_gate. The box bounds the
    cells of the gate's connected region (gate ≥ half its peak, 8-connected) that holds the peak. `inputs` are uint8 images, or with
    `start` the cached outputs of the frozen stages through `start` (the teacher's own, so the same trunk)."""
    architecture, side = config.architecture, config.image_size
    gate_input = get_architecture(architecture).gate_input
    teacher.eval()
    found: dict[int, tuple] = {}
    notumor = CLASSES.index("notumor")
    count = len(labels)
    for begin in range(0, count, batch_size):
        end = min(count, begin + batch_size)
        x = take(inputs, begin, end) if start else normalize(inputs[begin:end], config.mean, config.std)
        _, kept = forward_from(teacher, architecture, x, start, gate_input, stop=gate_input)
        logits, gate = teacher.logits_and_gate(kept)
        probs = torch.softmax(logits.float() / config.temperature, 1)
        maps = torch.sigmoid(gate.float())[:, 0].numpy()
        for i in range(end - begin):
            j, label = begin + i, int(labels[begin + i])
            if skip[j] or label == notumor or probs[i, label] < min_prob or maps[i].max() < min_gate:
                continue
            h, w = maps[i].shape
            _, regions = cv2.connectedComponents((maps[i] >= maps[i].max() / 2).astype(np.uint8), connectivity=8)
            rows, cols = np.nonzero(regions == regions.flat[maps[i].argmax()])
            found[j] = (cols.min() * side / w, rows.min() * side / h, (cols.max() + 1) * side / w, (rows.max() + 1) * side / h)
    return found


def gate_loss(gate_logits: torch.Tensor, masks: torch.Tensor, mass_weight: float = 0.0) -> torch.Tensor:
    """Binary cross-entropy of an attention gate's N×1×h×w logits against the masks' share of each cell; with
    mass_weight, plus that weight times a soft pointing game on the images with a tumour: −log of the share of
    the logits' spatial softmax on the cells whose centre lies in the box (where the pointing game counts a
    heatmap's peak as a hit), or on the cells the box touches when it holds no cell's centre."""
    h, w = gate_logits.shape[-2:]
    target = F.adaptive_avg_pool2d(masks[:, None].float(), (h, w))
    loss = F.binary_cross_entropy_with_logits(gate_logits.float(), target)
    tumour = target.flatten(1).amax(1) > 0
    if mass_weight and tumour.any():
        rows = ((torch.arange(h, device=masks.device) + 0.5) * masks.shape[-2] / h).long()
        cols = ((torch.arange(w, device=masks.device) + 0.5) * masks.shape[-1] / w).long()
        centres = masks[tumour][:, rows][:, :, cols].flatten(1) > 0.5
        touched = target.flatten(1)[tumour] > 0
        inside = torch.where(centres.any(1, keepdim=True), centres, touched)
        log_share = F.log_softmax(gate_logits.float().flatten(1)[tumour], 1)
        loss = loss - mass_weight * torch.logsumexp(log_share.masked_fill(~inside, -torch.inf), 1).mean()
    return loss


def localisation_scores(cams: torch.Tensor, boxes: list[tuple[float, float, float, float]], side: int) -> tuple[float, float]:
    """Pointing game and energy ratio of N×h×w class activation maps (min-max scaled per map, bilinear to
    side×side), against boxes in pixels of side×side; zeros when there are none."""
    if not len(cams):
        return 0.0, 0.0
    low, high = cams.flatten(1).min(1).values, cams.flatten(1).max(1).values
    cams = (cams - low[:, None, None]) / (high - low + 1e-7)[:, None, None]
    maps = F.interpolate(cams[:, None].float(), size=(side, side), mode="bilinear", align_corners=False)[:, 0].numpy()
    hits, ratios = score_maps(maps, boxes)
    return float(hits.mean()), float(ratios.mean())


def class_activation(features: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """CAM of each image's class: relu(Σ_k w[label, k] A_k), N×h×w, from the last block's N×K×h×w features."""
    return F.relu(torch.einsum("nkhw,nk->nhw", features, weight[labels]))
