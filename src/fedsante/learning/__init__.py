"""Pure learning algorithms: models, strategies, federated statistics. No I/O, no network."""

from fedsante.learning.logistic import LogisticRegression, SGDConfig
from fedsante.learning.scaling import Moments, Scaler, combine
from fedsante.learning.strategy import FedAvg, Strategy

__all__ = ["FedAvg", "LogisticRegression", "Moments", "SGDConfig", "Scaler", "Strategy", "combine"]
