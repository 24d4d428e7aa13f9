"""Billing fixtures: forms without CSRF tokens (one module tests CSRF on its own), a level and a plan."""

from __future__ import annotations

import pytest


@pytest.fixture
def app_config(app_config):
    return {**app_config, "WTF_CSRF_ENABLED": False}
