import pytest

from tests.keap.keapdata import API_KEY


@pytest.fixture
def app_config(app_config):
    return {**app_config, "KEAP_API_KEY": API_KEY, "KEAP_RATE_PER_SECOND": 1000, "KEAP_RATE_BURST": 1000,
            "KEAP_BACKOFF_BASE": 0.5, "KEAP_MAX_RETRIES": 2}


@pytest.fixture(autouse=True)
def sleeps(monkeypatch):
    """Waiting is recorded, not done: backoff and Retry-After are asserted on, and tests stay fast."""
    waited: list[float] = []
    monkeypatch.setattr("keap.client._sleep", waited.append)
    return waited


@pytest.fixture
def keap_member(session):
    from tests.factories import make_member

    def make(email="jane@example.com", external_source="Infusionsoft", **fields):
        return make_member(email=email, external_source=external_source, **fields)

    return make
