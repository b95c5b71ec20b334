"""`eval.hellaswag=download` takes at most MAX_RECORD_BYTES from the server (issue 22: one bound on every HTTP body):
a server that sends more is refused in one line and nothing is left in the cache. A real HTTP server on loopback."""
import http.server
import threading

import pytest

import model.evaluation as evaluation
from gptstack.files import MAX_RECORD_BYTES
from model.config import ConfigError

GOOD = b'{"ctx": "A man", "endings": ["a", "b", "c", "d"], "label": 0}\n'


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()  # no Content-Length: the body ends when the server says so
        if self.path == "/endless":
            piece = b"x" * (1 << 20)
            try:
                for _ in range(MAX_RECORD_BYTES // len(piece) + 64):  # past the bound
                    self.wfile.write(piece)
            except (BrokenPipeError, ConnectionResetError):  # the client stopped reading: what we want
                pass
        else:
            self.wfile.write(GOOD)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    path = tmp_path / "cache" / "hellaswag_val.jsonl"
    monkeypatch.setattr(evaluation, "HELLASWAG_CACHE", path)
    return path


def test_download_over_the_bound_is_refused_and_nothing_is_cached(server, cache, monkeypatch):
    monkeypatch.setattr(evaluation, "HELLASWAG_URL", f"{server}/endless")
    with pytest.raises(ConfigError, match="sent more than") as refused:
        evaluation.hellaswag_path("download")
    assert "\n" not in str(refused.value)
    assert not cache.exists() and list(cache.parent.iterdir()) == []  # no temp file left either


def test_download_within_the_bound_is_cached(server, cache, monkeypatch):
    monkeypatch.setattr(evaluation, "HELLASWAG_URL", f"{server}/hellaswag_val.jsonl")
    assert evaluation.hellaswag_path("download") == cache and cache.read_bytes() == GOOD
    assert evaluation.load_hellaswag(cache)[0]["label"] == 0
