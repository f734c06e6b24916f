"""The compiled parts: ingest._spanmap (see ingest/fastmap.py) and ingest._decide
(ingest/fastdecide.py). Everything else is in pyproject.toml.

Optional: where no C compiler is present the install still succeeds and the
service takes the Python path for every export.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(f"ingest.{name}", [f"ingest/{name}.c"], optional=True, extra_compile_args=["-O2"])
        for name in ("_spanmap", "_decide")
    ]
)
