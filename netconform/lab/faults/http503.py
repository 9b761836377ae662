"""A tiny HTTP server that answers every request with 503 (the `http-503` fault, FM-01).

    python3 -m netconform.lab.faults.http503 --port 18503

The fault runs it inside each echo backend's namespace and REDIRECTs the backend's HTTP port to it,
so clients see a working TCP connection and an L7 error, as with an overloaded or broken backend.
"""

from __future__ import annotations

import argparse
import http.server
import json
import signal
import sys
import threading
from typing import Any


class Handler503(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    timeout = 10  # an idle client does not hold a thread forever

    def _answer(self) -> None:
        body = (json.dumps({"status": 503, "reason": "netconform lab fault http-503"}) + "\n").encode()
        self.send_response(503, "Service Unavailable")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="http503", description="answer every HTTP request with 503")
    parser.add_argument("--listen", default="0.0.0.0")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    try:
        server = http.server.ThreadingHTTPServer((args.listen, args.port), Handler503)
    except OSError as exc:
        print(f"http503: cannot listen on {args.listen}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    server.daemon_threads = True
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    print(f"http503: listening on {args.listen}:{args.port}", flush=True)
    while not stop.wait(3600.0):  # until SIGTERM/SIGINT
        pass
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
