"""Flask's JSON through orjson: the breakdown routes return thousands of items.

Keys stay sorted (Umbraco.AI's order); anything orjson cannot write (an
integer past 64 bits, say) falls back to the standard provider, so the output
never depends on which encoder ran.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask.json.provider import DefaultJSONProvider


class OrjsonProvider(DefaultJSONProvider):
    sort_keys = True

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        if kwargs.get("indent") is None:
            try:
                return orjson.dumps(obj, default=self.default, option=orjson.OPT_SORT_KEYS).decode()
            except TypeError:
                pass  # orjson.JSONEncodeError is a TypeError
        return super().dumps(obj, **kwargs)
