"""Near-duplicate ("twin") detection: 32×32 grey thumbnails compared by Pearson correlation.

This is how ../shared/DATA.md measured the train/test leakage of the public dataset.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

THUMB = 32
DEFAULT_THRESHOLD = 0.99
DECODE_SIZE = 224  # commands that compare images without a model decode them at this side first


def thumbnails(images: torch.Tensor) -> torch.Tensor:
    """N×3×H×W uint8 images -> N×1024 rows, each zero-mean and unit-norm (dot product = Pearson r)."""
    rows = []
    for start in range(0, len(images), 512):
        chunk = images[start:start + 512].float()
        grey = (0.299 * chunk[:, 0] + 0.587 * chunk[:, 1] + 0.114 * chunk[:, 2]).unsqueeze(1)
        small = F.interpolate(grey, size=(THUMB, THUMB), mode="area").flatten(1)
        small = small - small.mean(dim=1, keepdim=True)
        rows.append(small / small.norm(dim=1, keepdim=True).clamp_min(1e-6))
    return torch.cat(rows) if rows else torch.empty(0, THUMB * THUMB)


def clean_mask(query: torch.Tensor, reference: torch.Tensor, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """True for each query thumbnail with no twin (Pearson r ≥ threshold) among the reference thumbnails."""
    best = np.full(len(query), -1.0, dtype=np.float32)
    if len(reference):
        for start in range(0, len(query), 1024):
            best[start:start + 1024] = (query[start:start + 1024] @ reference.T).max(dim=1).values.numpy()
    return best < threshold


def pairs(query: torch.Tensor, reference: torch.Tensor | None = None, threshold: float = DEFAULT_THRESHOLD) -> list[tuple[int, int, float]]:
    """All (i, j, r) with r ≥ threshold; within one set (reference None) each pair once, i < j."""
    same = reference is None
    reference = query if same else reference
    found = []
    for start in range(0, len(query), 1024):
        corr = query[start:start + 1024] @ reference.T
        ii, jj = torch.nonzero(corr >= threshold, as_tuple=True)
        for i, j in zip(ii.tolist(), jj.tolist()):
            i += start
            if not same or i < j:
                found.append((i, j, float(corr[i - start, j])))
    return found


def groups(n: int, within_pairs: list[tuple[int, int, float]]) -> np.ndarray:
    """Connected components of the twin graph: a group id per item (union-find)."""
    parent = np.arange(n)

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for i, j, _ in within_pairs:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    return np.array([find(i) for i in range(n)])


def grouped_split(labels: np.ndarray, group_ids: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (train, val), about `fraction` of each class in val, twins never straddling."""
    rng = np.random.default_rng(seed)
    val = []
    members: dict[int, list[int]] = {}
    for i, g in enumerate(group_ids.tolist()):
        members.setdefault(g, []).append(i)
    unique_groups = list(members)
    rng.shuffle(unique_groups)
    # Each group is assigned by the label of its first member; twins carry the same label here.
    wanted = {c: int(round(fraction * (labels == c).sum())) for c in np.unique(labels)}
    taken = {c: 0 for c in wanted}
    for g in unique_groups:
        idx = members[g]
        c = labels[idx[0]]
        if taken[c] + len(idx) <= wanted[c]:
            val.extend(idx)
            taken[c] += len(idx)
    val_mask = np.zeros(len(labels), dtype=bool)
    val_mask[val] = True
    return np.flatnonzero(~val_mask), np.flatnonzero(val_mask)


def twin_aware_split(labels: np.ndarray, thumbs: torch.Tensor, fraction: float, seed: int, threshold: float = DEFAULT_THRESHOLD):
    """(train indices, val indices, within-set twin pairs): a validation split no twin group straddles."""
    within = pairs(thumbs, threshold=threshold)
    train_idx, val_idx = grouped_split(labels, groups(len(labels), within), fraction, seed)
    return train_idx, val_idx, within
