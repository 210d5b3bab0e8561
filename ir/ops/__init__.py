"""Registers every primitive op. Importing `ir` imports this package once."""
from . import conv, elementwise, linalg, movement, pooling, random, reductions  # noqa: F401
