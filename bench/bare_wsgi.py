"""A WSGI application with no framework: what ``/healthz`` answers, written by hand. ``bench/access.py`` serves it
with the same gunicorn settings beside the service, so its row is the server's own floor (gunicorn's worker, the
kernel, the load generator, the machine's other load) that no change inside Flask or Coursegate can go below."""

BODY = b'{"status":"ok"}\n'
HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY))), ("Cache-Control", "no-store")]


def app(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]
