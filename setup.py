"""Kept for Dataflow: workers install the pipeline with `--setup_file`.

Everything is declared in pyproject.toml.
"""
import setuptools

setuptools.setup()
