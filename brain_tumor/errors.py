"""Errors a user can cause. Each message is one sentence: what was wrong and what to do.

Commands catch UserError, print its sentence and exit with status 2 (exit_status); the app shows it as it is.
"""
from __future__ import annotations

import sys
from typing import Callable


class UserError(Exception):
    """Base class of every error a user can cause; str(error) is one sentence for people."""


class UsageError(UserError, ValueError):
    """An argument that cannot work: an unknown class, model, method, layer or option."""


class InvalidImageError(UserError, ValueError):
    """The input could not be read as an image."""


class WeightsError(UserError, RuntimeError):
    """Weights could not be found, fetched or trusted."""


class PretrainedWeightsError(UserError, RuntimeError):
    """ImageNet weights could not be fetched."""


def exit_status(work: Callable[[], object]) -> int:
    """A command's exit status: 0 when `work` finishes; 2, with the error's one sentence on stderr, when a
    UserError ends it."""
    try:
        work()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
