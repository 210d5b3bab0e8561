"""graphc.nn: layers and networks built from the functional ops (tinynn-compatible names).

    from graphc.nn import Net, Dense, ReLU
    net = Net([Dense(400), ReLU(), Dense(100), ReLU(), Dense(10)])

Modules own their parameter values and append their computation to the graph being traced
(see module.py); `graphc.Model` compiles them into training and inference executables.
"""
from .conv import AvgPool2D, Conv2D, MaxPool2D
from .layers import (ELU, GELU, Activation, Dense, Dropout, Flatten, LeakyReLU, ReLU, Reshape,
                     Sigmoid, Softplus, Tanh)
from .module import Module, current_step, step_counter
from .net import Net

__all__ = ["Module", "Net", "Dense", "Conv2D", "MaxPool2D", "AvgPool2D", "Dropout", "Flatten",
           "Reshape", "Activation", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softplus", "GELU",
           "ELU", "step_counter", "current_step"]
