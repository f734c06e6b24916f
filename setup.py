"""The one compiled part: ingest._spanmap (see ingest/fastmap.py). Everything else is in pyproject.toml.

Optional: where no C compiler is present the install still succeeds and the
service takes the Python path for every export.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("ingest._spanmap", ["ingest/_spanmap.c"], optional=True, extra_compile_args=["-O2"])])
