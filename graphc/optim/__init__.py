"""graphc.optim: optimizers (IR update rules inside the compiled step) and learning-rate
schedulers (which change the runtime learning rate, never the compiled code)."""
from .optimizers import (SGD, Adadelta, Adagrad, Adam, Momentum, Optimizer, RAdam, RMSProp,
                         get, slot_name)
from .schedulers import (BaseScheduler, CyclicalLR, ExponentialLR, LinearLR, MultiStepLR,
                         StepLR)

__all__ = ["Optimizer", "SGD", "Momentum", "RMSProp", "Adagrad", "Adadelta", "Adam", "RAdam",
           "BaseScheduler", "StepLR", "MultiStepLR", "ExponentialLR", "LinearLR", "CyclicalLR",
           "get", "slot_name"]
