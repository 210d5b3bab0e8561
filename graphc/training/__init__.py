"""Training: the Model (graphs.py builds its graphs, model.py runs them, loop.py has fit and
evaluate, checkpoint.py saves and loads)."""
from .graphs import GradLayout
from .model import Gradients, Model

__all__ = ["Model", "Gradients", "GradLayout"]
