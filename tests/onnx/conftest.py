"""tests/onnx: the ONNX import/export/backend tests (skipped when onnx is not installed).

Helpers in this folder import as plain modules (`import onnx_backend_cases`); their names
start with `onnx_` so they never shadow anything. The folder must not be importable as a
package called `onnx`, hence no __init__.py here.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
