"""Teaching a model where to look: tumour boxes carried onto training images, and a loss on the
class activation map's share outside the box.

figshare is one of the sources of the Kaggle set, so a boxed figshare slice often has a near-identical
twin in Kaggle's Training split; the twin inherits the box, scaled to its own pixels. For a global
average pool followed by a linear layer, Grad-CAM at the last block equals CAM (Zhou et al., 2016):
relu(Σ_k w_ck A_k), differentiable without a second backward pass, so it can be trained directly.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from training import twins
from training.boxes import BoxedSlice, box_mask


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
    """(count×side×side float masks, count bools saying which have a box)."""
    masks = torch.zeros(count, side, side)
    has = torch.zeros(count, dtype=torch.bool)
    for j, box in boxes.items():
        masks[j] = torch.from_numpy(box_mask(box, side)).float()
        has[j] = True
    return masks, has


def class_activation(features: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """CAM of each image's class: relu(Σ_k w[label, k] A_k), N×h×w, from the last block's N×K×h×w features."""
    return F.relu(torch.einsum("nkhw,nk->nhw", features, weight[labels]))


def outside_share_loss(cam: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Mean share of each map's mass that lies outside its box (masks resized to the map by area)."""
    inside = F.adaptive_avg_pool2d(masks[:, None], cam.shape[-2:])[:, 0]
    total = cam.flatten(1).sum(1) + 1e-6
    return ((cam * (1 - inside)).flatten(1).sum(1) / total).mean()
