"""The analytics API: flask-smorest blueprints under /umbraco/ai/management/api/v1."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Flask

if TYPE_CHECKING:
    from app import Runtime


def init_app(app: Flask, runtime: Runtime) -> None:
    """Registers the analytics blueprints (built in the analytics API issue)."""
