"""The Keap client on its own: errors, retries, the token bucket."""

import threading

import pytest
import requests
from responses import matchers

from keap import client as keap_client
from keap.client import KeapClient, KeapSettings, TokenBucket, parse_error, retry_after_seconds
from keap.errors import KeapAuthError, KeapError, KeapNotFound, KeapRateLimited, KeapUnavailable
from tests.keap import keapdata as kd


def _client(**overrides) -> KeapClient:
    settings = KeapSettings(api_key=kd.API_KEY, rate_per_second=1000, burst=1000, **overrides)
    return KeapClient(settings, bucket=TokenBucket(1000, 1000))


def _response(status: int, body: bytes | str, headers: dict | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body.encode() if isinstance(body, str) else body
    response.headers.update(headers or {})
    return response


@pytest.mark.parametrize("body, code, message", [
    ('{"code": "429", "message": "Quota Exceeded", "status": "Request Throttled", "details": null}', "429",
     "Quota Exceeded"),
    ('{"code": 404, "message": "Not found", "status": "NOT_FOUND", "details": [{"domain": "crm"}]}', "404",
     "Not found"),
    ('{"message": "no code here"}', None, "no code here"),
    ('{"code": null, "message": 12}', None, None),
    ("<html>Bad gateway</html>", None, None),
    ("", None, None),
    ('["a list"]', None, None),
])
def test_errors_are_parsed_leniently(body, code, message):
    parsed = parse_error(_response(500, body))
    assert (parsed.code, parsed.message) == (code, message)


def test_the_string_code_429_means_rate_limited():
    assert parse_error(_response(400, '{"code": "429"}')).rate_limited
    assert parse_error(_response(429, "")).rate_limited
    assert not parse_error(_response(400, '{"code": 400}')).rate_limited


def test_retry_after_in_seconds_and_as_a_date():
    assert retry_after_seconds(_response(429, "", {"Retry-After": "3"})) == 3.0
    assert retry_after_seconds(_response(429, "", {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 0.0
    assert retry_after_seconds(_response(429, "", {"Retry-After": "soon"})) is None
    assert retry_after_seconds(_response(429, "")) is None


@pytest.mark.parametrize("status, error", [(401, KeapAuthError), (403, KeapAuthError), (404, KeapNotFound),
                                           (400, KeapError), (409, KeapError)])
def test_client_errors_map_to_domain_errors_without_retrying(mocked_responses, status, error):
    mocked_responses.get(f"{kd.BASE}/products/1", status=status, json=kd.error(status, status="X"))
    with pytest.raises(error):
        _client().get_product("1")
    assert len(mocked_responses.calls) == 1


def test_server_errors_are_retried_a_bounded_number_of_times(mocked_responses, sleeps):
    for _ in range(4):
        mocked_responses.get(f"{kd.BASE}/products/1", status=502, body="bad gateway")
    with pytest.raises(KeapUnavailable):
        _client(max_retries=3, backoff_base=1, backoff_max=3).get_product("1")
    assert len(sleeps) == 3 and all(0.5 <= s <= 3 for s in sleeps)


def test_patch_sends_the_update_mask_and_only_the_payment_method(mocked_responses):
    mocked_responses.patch(f"{kd.BASE}/subscriptions/9", json=kd.subscription("9", "1", payment_method_id="pm-new"),
                           match=[matchers.query_param_matcher({"update_mask": "payment_method_id"}),
                                  matchers.json_params_matcher({"payment_method_id": "pm-new"})])
    assert _client().update_subscription_payment_method("9", "pm-new")["payment_method_id"] == "pm-new"


def test_payment_component_session_needs_a_key(mocked_responses):
    mocked_responses.post(f"{kd.BASE}/paymentMethodConfigs", json={"session_key": kd.SESSION_KEY},
                          match=[matchers.json_params_matcher({"contact_id": "101"})])
    assert _client().create_payment_method_config("101") == kd.SESSION_KEY
    mocked_responses.post(f"{kd.BASE}/paymentMethodConfigs", json={})
    with pytest.raises(KeapUnavailable):
        _client().create_payment_method_config("101")


def test_pagination_stops_on_a_repeated_token(mocked_responses):
    for _ in range(2):
        mocked_responses.get(f"{kd.BASE}/contacts/1/paymentMethods",
                             json={"records": [kd.payment_method("pm", "1")], "next_page_token": "same"})
    assert len(_client().list_payment_methods("1")) == 2


def test_settings_never_show_the_key():
    settings = KeapSettings.from_config({"KEAP_API_KEY": kd.API_KEY})
    assert kd.API_KEY not in repr(settings) and settings.base_url == "https://api.keap.com/crm"
    assert KeapSettings.from_config({"COURSEGATE_KEAP_BASE_URL": "https://keap.test/crm/"}).base_url == \
        "https://keap.test/crm"
    assert KeapSettings.from_config({"CELERY_BROKER_URL": "redis://h:6379/0"}).redis_url == "redis://h:6379/0"
    assert KeapSettings.from_config({"CELERY_BROKER_URL": "memory://"}).redis_url is None


# --- the token bucket ------------------------------------------------------------------------------

class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_bucket_allows_four_at_once_then_one_every_quarter_second():
    clock = FakeClock()
    bucket = TokenBucket(4, 4, clock=clock)
    assert [bucket.reserve(10) for _ in range(6)] == [0, 0, 0, 0, 0.25, 0.5]
    clock.now += 10  # refilled, but never beyond the burst
    assert [bucket.reserve(10) for _ in range(5)] == [0, 0, 0, 0, 0.25]


def test_bucket_is_shared_by_threads():
    clock = FakeClock()
    bucket = TokenBucket(4, 4, clock=clock)
    waits: list[float] = []
    lock = threading.Lock()

    def take():
        wait = bucket.reserve(100)
        with lock:
            waits.append(wait)

    threads = [threading.Thread(target=take) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(waits) == [0, 0, 0, 0] + [0.25 * n for n in range(1, 9)]


def test_bucket_gives_up_beyond_the_longest_wait():
    bucket = TokenBucket(4, 1, clock=FakeClock())
    bucket.reserve(1)
    with pytest.raises(KeapRateLimited):
        bucket.reserve(0.1)
    assert bucket.reserve(1) == 0.25  # giving up did not use a token


def test_one_bucket_per_key_for_the_whole_process():
    a = keap_client.bucket_for(KeapSettings(api_key="key-a"))
    assert keap_client.bucket_for(KeapSettings(api_key="key-a")) is a
    assert keap_client.bucket_for(KeapSettings(api_key="key-b")) is not a


def test_redis_unreachable_falls_back_to_the_process_bucket(caplog):
    from tests.conftest import free_port

    url = f"redis://:secret-password@127.0.0.1:{free_port()}/0"
    bucket = keap_client.bucket_for(KeapSettings(api_key="key-redis", redis_url=url, rate_per_second=1000, burst=5))
    bucket.acquire(1)
    bucket.acquire(1)
    assert bucket.fallback.tokens < 5
    assert "in-process" in caplog.text and "secret-password" not in caplog.text


def test_a_deadline_bounds_timeouts_and_retries(mocked_responses, sleeps, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr("keap.client.time.monotonic", clock)
    mocked_responses.get(f"{kd.BASE}/products/1", status=503, body="")
    with keap_client.deadline(3):
        with pytest.raises(KeapUnavailable):
            _client(backoff_base=8, backoff_max=8, timeout=5).get_product("1")  # the backoff would overrun
        assert mocked_responses.calls[0].request.req_kwargs["timeout"] == 3  # not the full 5 s
        clock.now += 3
        with pytest.raises(KeapUnavailable):
            _client().get_product("1")  # time is up: nothing is sent
    assert len(mocked_responses.calls) == 1 and sleeps == []


@pytest.fixture
def redis_url(tmp_path):
    """A throwaway redis-server on a free port for this test only (skipped where none is installed)."""
    import shutil
    import subprocess
    import time

    from tests.conftest import free_port

    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    process = subprocess.Popen([binary, "--port", str(port), "--save", "", "--appendonly", "no",
                                "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import redis

        client = redis.Redis(port=port)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.02)
        client.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=5)


def test_redis_bucket_is_shared_by_processes(redis_url, sleeps):
    # Two buckets on the same key stand for two processes (web and worker) using the same Keap key.
    first = keap_client.RedisTokenBucket(redis_url, "test:keap:shared", 4, 4, TokenBucket(4, 4))
    second = keap_client.RedisTokenBucket(redis_url, "test:keap:shared", 4, 4, TokenBucket(4, 4))
    for _ in range(4):
        first.acquire(10)
    assert sleeps == []
    second.acquire(10)
    assert len(sleeps) == 1 and 0.2 < sleeps[0] <= 0.25
    with pytest.raises(KeapRateLimited):
        second.acquire(0.1)  # the next token is more than 0.1 s away
    assert first.fallback.tokens == second.fallback.tokens == 4  # Redis did the limiting
