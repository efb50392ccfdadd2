"""A stand-in for GitHub's REST API of issue comments, on loopback, for the action tests.

list (paginated, two per page, with Link headers as GitHub sends them), create, update,
delete; every request must carry the token. `calls` records what was done. Comments the
token creates are written by `login`: github-actions[bot] by default, a workflow's token,
for which GET /user is 403; another login is a personal token's user, whom GET /user
names. `read_only` answers every write with 403, as GitHub does a fork's token.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

PAGE = 2
LIST = re.compile(r"^/repos/([^/]+/[^/]+)/issues/(\d+)/comments$")
ONE = re.compile(r"^/repos/([^/]+/[^/]+)/issues/comments/(\d+)$")


class GitHubStub:
    def __init__(self, token: str, repository: str, number: int,
                 login: str = "github-actions[bot]", read_only: bool = False) -> None:
        self.token, self.repository, self.number = token, repository, number
        self.login, self.read_only = login, read_only
        self.comments: list[dict[str, Any]] = []
        self.calls: list[tuple[str, int | None]] = []
        self._next = 100
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, body: str, login: str = "someone") -> dict[str, Any]:
        with self._lock:
            self._next += 1
            comment = {"id": self._next, "body": body, "user": {"login": login}}
            self.comments.append(comment)
            return comment

    def __enter__(self) -> GitHubStub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _reply(self, status: int, body: Any = None, link: str = "") -> None:
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if link:
                    self.send_header("Link", link)
                self.end_headers()
                self.wfile.write(data)

            def _route(self, method: str) -> None:
                if self.headers.get("Authorization") != f"Bearer {stub.token}":
                    return self._reply(401, {"message": "Bad credentials"})
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                payload = json.loads(self.rfile.read(length)) if length else None
                if method != "GET" and stub.read_only:
                    stub.calls.append(("forbidden", None))
                    return self._reply(403, {"message": "Resource not accessible by integration"})
                if method == "GET" and parts.path == "/user":
                    if stub.login.endswith("[bot]"):
                        return self._reply(403, {"message": "Resource not accessible by "
                                                            "integration"})
                    return self._reply(200, {"login": stub.login})
                listed, one = LIST.match(parts.path), ONE.match(parts.path)
                if listed and listed[1] == stub.repository and int(listed[2]) == stub.number:
                    if method == "GET":
                        page = int(parse_qs(parts.query).get("page", ["1"])[0])
                        items = stub.comments[(page - 1) * PAGE:page * PAGE]
                        more = len(stub.comments) > page * PAGE
                        link = (f'<{stub.url}{parts.path}?per_page=100&page={page + 1}>; '
                                f'rel="next"') if more else ""
                        stub.calls.append(("list", page))
                        return self._reply(200, items, link)
                    if method == "POST":
                        comment = stub.add(payload["body"], login=stub.login)
                        stub.calls.append(("create", comment["id"]))
                        return self._reply(201, comment)
                if one and one[1] == stub.repository:
                    found = [c for c in stub.comments if c["id"] == int(one[2])]
                    if not found:
                        return self._reply(404, {"message": "Not Found"})
                    if method == "PATCH":
                        found[0]["body"] = payload["body"]
                        stub.calls.append(("update", found[0]["id"]))
                        return self._reply(200, found[0])
                    if method == "DELETE":
                        stub.comments.remove(found[0])
                        stub.calls.append(("delete", found[0]["id"]))
                        return self._reply(204)
                return self._reply(404, {"message": "Not Found"})

            def do_GET(self) -> None:  # noqa: N802
                self._route("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._route("POST")

            def do_PATCH(self) -> None:  # noqa: N802
                self._route("PATCH")

            def do_DELETE(self) -> None:  # noqa: N802
                self._route("DELETE")

        return Handler
