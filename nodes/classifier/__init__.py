"""Zero-shot classification: prototype bank, metrics, node."""
from .bank import UNKNOWN, Prediction, PrototypeBank

__all__ = ["UNKNOWN", "Prediction", "PrototypeBank"]
