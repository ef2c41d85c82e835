"""Errors a user can cause. Each message is one sentence: what was wrong and what to do.

Commands catch UserError, print its sentence and exit with status 2; the app shows it as it is.
"""
from __future__ import annotations


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
