"""Registers every primitive op. Importing `ir` imports this package once."""
from . import conv, elementwise, linalg, movement, pooling, random, reductions  # noqa: F401
from . import fused  # noqa: F401,E402  (after the primitives: its body runs them)
