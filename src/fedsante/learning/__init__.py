"""Pure learning algorithms: models, strategies, federated statistics. No I/O, no network."""

from fedsante.learning.logistic import LOGISTIC, LogisticRegression, SGDConfig
from fedsante.learning.models import Model, Params
from fedsante.learning.scaling import Moments, Scaler, combine
from fedsante.learning.strategies import STRATEGIES, FedAvg, FedProx, Strategy, make_strategy

__all__ = ["LOGISTIC", "STRATEGIES", "FedAvg", "FedProx", "LogisticRegression", "Model", "Moments", "Params",
           "SGDConfig", "Scaler", "Strategy", "combine", "make_strategy"]
