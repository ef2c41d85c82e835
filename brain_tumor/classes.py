"""The four diagnostic classes and the folder names other releases of the data use."""
from __future__ import annotations

import re

from brain_tumor.errors import UsageError

CLASSES: tuple[str, ...] = ("glioma", "meningioma", "notumor", "pituitary")

DISPLAY_NAMES = {
    "glioma": "Glioma",
    "meningioma": "Meningioma",
    "notumor": "No tumour",
    "pituitary": "Pituitary tumour",
}

# Keys are names squeezed to lowercase letters only, so "No Tumor", "no_tumor" and
# "notumor" meet; values are canonical class names.
_ALIASES = {
    "glioma": "glioma",
    "gliomatumor": "glioma",
    "meningioma": "meningioma",
    "meningiomatumor": "meningioma",
    "notumor": "notumor",
    "notumour": "notumor",
    "normal": "notumor",
    "healthy": "notumor",
    "pituitary": "pituitary",
    "pituitarytumor": "pituitary",
    "pituitarytumour": "pituitary",
}


def normalize_class_name(name: str) -> str:
    """Map a folder or label name from any common release of the data to a name in CLASSES.

    >>> normalize_class_name("No Tumor")
    'notumor'
    """
    key = re.sub(r"[^a-z]", "", name.lower())
    try:
        return _ALIASES[key]
    except KeyError:
        raise UsageError(
            f"{name!r} is not a known class name; expected one of {', '.join(CLASSES)} "
            "(or a common variant such as 'glioma_tumor' or 'No Tumor')."
        ) from None
