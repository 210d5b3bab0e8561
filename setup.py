"""Builds the optional C extension runtime._boundary (the native call boundary,
runtime/boundary.py); everything else is in pyproject.toml. `optional=True`: without a C
compiler the install still succeeds and every call takes the Python path."""
from setuptools import Extension, setup

setup(ext_modules=[Extension("runtime._boundary", ["runtime/_boundary.c"], optional=True)])
