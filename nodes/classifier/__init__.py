"""Zero-shot classification: prototype bank, metrics, split-sweep statistics, node."""
from .bank import UNKNOWN, Prediction, PrototypeBank

__all__ = ["UNKNOWN", "Prediction", "PrototypeBank"]
