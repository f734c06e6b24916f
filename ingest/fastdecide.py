"""The writer's per-call decisions for a group, compiled (ingest/_decide.c).

`gather` and `split` do what `ingest.pipeline._gather` and
`ingest.context._split` do in Python, for the common case of nearly every
call (one look-up key each, then stored as it is with its own and its
resource's context), without an interpreter step per call: under load the
writer's Python was most of the interpreter lock's time, and the writer is
the serial step every export waits for. Each is None where the extension is
not built; tests/unit/test_decide.py holds the two to the same results.
"""

from __future__ import annotations

try:
    from ingest import _decide
except ImportError:  # installed without a compiler
    _decide = None

AVAILABLE = _decide is not None
gather = _decide.gather if _decide is not None else None
split = _decide.split if _decide is not None else None
