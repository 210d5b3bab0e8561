"""`Net`: a sequence of layers applied in order (tinynn's Net).

    net = Net([Dense(400), ReLU(), Dense(100), ReLU(), Dense(10)], seed=0)

Layers are named by type and position among layers of that type (dense1, relu1, dense2, ...)
unless they were given a name; parameters are then "net.dense1.w", "net.dense1.b", ... and
nodes carry layer paths like "net/dense1/matmul". A seed makes parameter initialisation
reproducible (without one, initializers draw from numpy's global RNG as in tinynn).
"""
from __future__ import annotations

from typing import Optional, Sequence

from ir.errors import GraphcError

from .module import Module, default_name


class Net(Module):
    def __init__(self, layers: Sequence[Module], name: Optional[str] = None, seed=None):
        super().__init__(name)
        layers = list(layers)
        counts: dict = {}
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise GraphcError(f"Net: layer {i} must be a graphc.nn Module, found "
                                  f"{type(layer).__name__} {layer!r:.60}")
            base = default_name(layer)
            counts[base] = counts.get(base, 0) + 1
            self.add_module(layer.name or f"{base}{counts[base]}", layer)
        self.layers = layers
        if seed is not None:
            self.set_seed(seed)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i) -> Module:
        return self.layers[i]
