"""Brain-tumour MRI classification: glioma, meningioma, pituitary tumour or no tumour.

Research use only; not a medical device.
"""
from brain_tumor.classes import CLASSES, DISPLAY_NAMES, normalize_class_name
from brain_tumor.classifier import Classifier, Explanation, Prediction
from brain_tumor.config import ModelConfig
from brain_tumor.errors import InvalidImageError, PretrainedWeightsError, UsageError, UserError, WeightsError
from brain_tumor.images import load_image
from brain_tumor.models import ARCHITECTURES, create_model, model_config
from brain_tumor.preprocess import preprocess
from brain_tumor.scan import ScanResult, classify_scan
from brain_tumor.weights import resolve_weights

__all__ = [
    "ARCHITECTURES", "CLASSES", "DISPLAY_NAMES", "Classifier", "Explanation", "InvalidImageError",
    "ModelConfig", "Prediction", "PretrainedWeightsError", "ScanResult", "UsageError", "UserError", "WeightsError", "classify_scan",
    "create_model",
    "load_image", "model_config", "normalize_class_name", "preprocess", "resolve_weights",
]
__version__ = "0.2.0"
