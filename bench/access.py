"""Benchmark the access check, the member's own view and the member access token under gunicorn.

    DATABASE_URL=postgresql://user@127.0.0.1:5432/dbname .venv/bin/python bench/access.py [-n 5000] [-c 16]

Migrates the database, adds courses, levels and members of its own (tagged with a run id, so existing data is
left alone and every answer can be checked), an owner API key, and signs members in through their login links on
the server. Then, on one gunicorn server, it sends at concurrency C:

- ``GET /healthz`` (the floor: no database, no session);
- ``GET /api/v1/access?email=&course=`` with the owner key (the call a headless front end makes per page view);
- ``GET /api/v1/me`` with a member's session cookie;
- ``POST /api/v1/me/access-token`` with a member's session cookie (skipped if the server has no such endpoint);

and, on a second gunicorn with the same settings, ``GET /healthz`` of a bare WSGI application (``bench/bare_wsgi.py``):
the server's own floor on this machine, which no change inside the service can go below.

All of them are interleaved in rounds, so the machine's changing load falls on all of them alike. Prints req/s,
p50/p99, the ratio to ``/healthz`` and the CPU per request (web server, PostgreSQL when local, load generator),
and checks every answer against the data it created (tokens verified with the key from the JWKS endpoint).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import uuid
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from webhooks import Client, CpuMeter, gunicorn, migrate, percentile, server_env

TOKEN_PATH = "/api/v1/me/access-token"
BARE = "bare WSGI app, same gunicorn"
JWKS_PATH = "/.well-known/jwks.json"


def seed(app, run: str, domain: str, members: int, rng: random.Random) -> dict:
    """Courses, levels and members with grants (some revoked): returns what each member may open."""
    from extensions import db
    from membership import auth, services
    from membership.models import Course, Grant, GrantStatus, Level, Member

    with app.app_context():
        courses = [Course(title=f"Bench {i} {run}", slug=f"acc-{i}-{run}", status="published") for i in range(4)]
        levels = [Level(name=f"Bench {name} {run}", slug=f"acc-{name}-{run}", courses=opens)
                  for name, opens in (("gold", courses[:2]), ("silver", courses[2:3]), ("bronze", courses[3:]))]
        db.session.add_all([*courses, *levels])
        people = [Member(email=f"m{i}@{domain}", name=f"Member {i}") for i in range(members)]
        db.session.add_all(people)
        db.session.flush()
        expected: dict[str, dict] = {}
        for i, member in enumerate(people):
            held = sorted(rng.sample(range(len(levels)), rng.choice((1, 1, 2))))
            for index in held:
                db.session.add(Grant(member=member, level=levels[index], source_kind="manual"))
            gone = [i for i in range(len(levels)) if i not in held]
            if gone and i % 4 == 0:  # a revoked grant must never show
                db.session.add(Grant(member=member, level=levels[gone[0]], source_kind="manual",
                                     status=GrantStatus.REVOKED))
            expected[member.email] = {
                "levels": [levels[index].slug for index in held],
                "courses": {course.slug: [levels[index].slug for index in held if course in levels[index].courses]
                            for course in courses},
            }
        _, key = auth.create_api_key(db.session, f"bench {run}")
        db.session.commit()
        links = {member.email: services.login_url(member, purpose="login").split("/login/", 1)[1]
                 for member in people}
        slugs = [course.slug for course in courses]
        db.engine.dispose()
    return {"courses": slugs, "expected": expected, "key": key, "links": links}


def _session_cookie(headers) -> str | None:
    jar = SimpleCookie()
    for name, value in headers:
        if name.lower() == "set-cookie":
            jar.load(value)
    return jar["session"].value if "session" in jar else None


def sign_in(client: Client, links: dict[str, str], emails: list[str]) -> dict[str, str]:
    """Follow each member's login link on the server as a member does: open it (a page with a sign-in button and
    its CSRF token), press the button (the POST uses the link). The session cookie it sets, by email."""
    _, pages = client.run([("GET", f"/login/{links[email]}", None, {}) for email in emails], keep_headers=True)
    posts = []
    for email, (_, status, body, headers) in zip(emails, pages):
        token = re.search(rb'name="csrf_token" value="([^"]+)"', body)
        cookie = _session_cookie(headers)
        if status != 200 or token is None or cookie is None:
            raise RuntimeError(f"opening {email}'s login link answered {status}")
        posts.append(("POST", f"/login/{links[email]}", urlencode({"csrf_token": token.group(1).decode()}).encode(),
                      {"Cookie": f"session={cookie}", "Content-Type": "application/x-www-form-urlencoded",
                       "Referer": f"http://127.0.0.1:{client.port}/login/{links[email]}"}))
    _, results = client.run(posts, keep_headers=True)
    cookies = {}
    for email, (_, status, _, headers) in zip(emails, results):
        cookie = _session_cookie(headers)
        if status != 302 or cookie is None:
            raise RuntimeError(f"signing in {email} through its login link answered {status}")
        cookies[email] = f"session={cookie}"
    return cookies


def token_checker(client: Client, expected: dict):
    """A function telling whether a token response is right: verified with the JWKS key, listing the courses."""
    import jwt

    _, [(_, status, body)] = client.run([("GET", JWKS_PATH, None, {})])
    if status != 200:
        raise RuntimeError(f"{JWKS_PATH} answered {status}")
    keys = {jwk["kid"]: jwt.PyJWK(jwk) for jwk in json.loads(body)["keys"]}

    def check(email: str, data: bytes) -> bool:
        token = json.loads(data)["token"]
        key = keys[jwt.get_unverified_header(token)["kid"]]
        claims = jwt.decode(token, key, algorithms=[key.algorithm_name], audience="coursegate:member-access")
        want = expected[email]
        return (claims["email"] == email and sorted(claims["levels"]) == sorted(want["levels"])
                and sorted(claims["courses"]) == sorted(c for c, lv in want["courses"].items() if lv))

    return check


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=5000, help="requests to each endpoint (default 5000)")
    parser.add_argument("-c", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker (default 4)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--members", type=int, default=200, help="members to create (default 200)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--port", type=int, default=None, help="port for gunicorn (default: a free one)")
    args = parser.parse_args()

    run = uuid.uuid4().hex[:8]
    domain = f"{run}.bench.example"
    env = server_env(run)
    if env is None:
        return 2
    database_url = env["DATABASE_URL"]
    env["CELERY_BROKER_URL"] = "memory://localhost/"  # nothing here queues a job; no in-process runner either
    os.environ.update(env)
    migrate(env)

    from app import create_app

    rng = random.Random(args.seed)
    data = seed(create_app(), run, domain, args.members, rng)
    expected = data["expected"]
    emails = sorted(expected)
    auth = {"Authorization": f"Bearer {data['key']}"}

    def access_request():
        email = rng.choice(emails) if rng.random() < 0.9 else f"nobody-{rng.randrange(10**6)}@{domain}"
        course = rng.choice(data["courses"])
        return ("GET", "/api/v1/access?" + urlencode({"email": email, "course": course}), None, auth), (email, course)

    with (gunicorn(env, args.workers, args.threads, args.port) as (server, port),
          gunicorn(env, args.workers, args.threads, app="bench.bare_wsgi:app") as (bare_server, bare_port)):
        client = Client(port, args.c)
        bare_client = Client(bare_port, args.c)
        cookies = sign_in(client, data["links"], emails[: max(args.c * 4, 1)])
        signed_in = sorted(cookies)
        _, [(_, token_status, _)] = client.run([("POST", TOKEN_PATH, b"", {"Cookie": cookies[signed_in[0]]})])
        endpoints = ["GET /healthz", "GET /api/v1/access", "GET /api/v1/me"]
        if token_status != 404:
            endpoints.append(f"POST {TOKEN_PATH}")
        client.run([("GET", "/healthz", None, {})] * 500 + [access_request()[0] for _ in range(200)])  # warm up
        bare_client.run([("GET", "/healthz", None, {})] * 500)
        endpoints.insert(1, BARE)

        def workload(endpoint: str, count: int):
            work, facts = [], []
            for _ in range(count):
                if endpoint in ("GET /healthz", BARE):
                    work.append(("GET", "/healthz", None, {}))
                    facts.append(None)
                elif endpoint == "GET /api/v1/access":
                    item, fact = access_request()
                    work.append(item)
                    facts.append(fact)
                else:
                    email = rng.choice(signed_in)
                    method, path = endpoint.split(" ")
                    work.append((method, path, b"" if method == "POST" else None, {"Cookie": cookies[email]}))
                    facts.append(email)
            return work, facts

        serving = {name: (bare_client, bare_server) if name == BARE else (client, server) for name in endpoints}
        measured = {name: {"seconds": 0.0, "results": [], "facts": [], "meter": CpuMeter(serving[name][1].pid, database_url)}
                    for name in endpoints}
        per_round = max(args.n // args.rounds, 1)
        for _ in range(args.rounds):
            for name in endpoints:
                work, facts = workload(name, per_round)
                entry = measured[name]
                with entry["meter"]:
                    seconds, results = serving[name][0].run(work)
                entry["seconds"] += seconds
                entry["results"] += results
                entry["facts"] += facts
        has_token = any(name.endswith(TOKEN_PATH) for name in endpoints)
        check_token = token_checker(client, expected) if has_token else None

    def correct(name: str, fact, status: int, body: bytes) -> bool:
        if status != 200:
            return False
        if name == "GET /api/v1/access":
            email, course = fact
            levels = expected.get(email, {"courses": {}})["courses"].get(course, [])
            return json.loads(body) == {"allowed": bool(levels), "levels": levels}
        if name == "GET /api/v1/me":
            me = json.loads(body)
            return (me["member"]["email"] == fact
                    and sorted(level["slug"] for level in me["levels"]) == sorted(expected[fact]["levels"]))
        if name.endswith(TOKEN_PATH):
            return check_token(fact, body)
        return True

    print(f"\nCoursegate access benchmark: {args.n} requests per endpoint in {args.rounds} interleaved rounds, C={args.c},"
          f" gunicorn {args.workers} workers x {args.threads} threads, {database_url.split('@')[-1]}, "
          f"load average before {os.getloadavg()[0]:.1f} (2 cores: {os.cpu_count()})")
    floor_rate = None
    ok = True
    print(f"  {'endpoint':32s} {'req/s':>7s} {'vs /healthz':>11s} {'p50':>8s} {'p99':>8s}   CPU per request")
    for name in endpoints:
        entry = measured[name]
        results = entry["results"]
        rate = len(results) / entry["seconds"]
        floor_rate = floor_rate or rate
        latencies = [r[0] for r in results]
        wrong = sum(not correct(name, fact, status, body) for fact, (_, status, body) in zip(entry["facts"], results))
        ok &= wrong == 0
        cpu = "   ".join(f"{part} {used / len(results) * 1000:.2f} ms" for part, used in entry["meter"].used.items())
        print(f"  {name:32s} {rate:7.0f} {rate / floor_rate:11.0%} {percentile(latencies, 50) * 1000:6.1f}ms"
              f" {percentile(latencies, 99) * 1000:6.1f}ms   {cpu}" + (f"   {wrong} WRONG" if wrong else ""))
    if check_token is None:
        print(f"  (no {TOKEN_PATH} on this server)")
    print("EVERY ANSWER CHECKED: ALL RIGHT" if ok else "SOME ANSWERS WERE WRONG")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
