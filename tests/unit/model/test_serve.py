"""`gptstack serve`'s command line before any model loads: bad options and a busy port are one error line, and the
banner says where it listens, warning on stderr for any address off this machine (the server itself:
tests/integration/model/chat/test_serve.py)."""
import socket
import sys

import pytest

from gptstack.errors import InputError
from model.serve import banner, bind, is_loopback, main


@pytest.mark.parametrize("flags, message", [
    (["--port", "70000"], "--port must be from 0 to 65535"),
    (["--api-key", " "], "--api-key is empty"),
])
def test_bad_options_are_one_error_line(flags, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--checkpoint", "nowhere", *flags])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith(f"error: {message}") and err.count("\n") == 1


def test_a_busy_port_is_refused_before_the_model_loads():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(InputError, match=f"--host 127.0.0.1 --port {port}: cannot listen there"):
            bind("127.0.0.1", port)


def test_loopback_is_quiet_and_any_other_address_warns():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    [(stream, line)] = banner("127.0.0.1", 8000, "sft", 1024, has_key=False)
    assert stream is sys.stdout and "http://127.0.0.1:8000/v1 (loopback only" in line
    (warn_stream, warning), (_, line) = banner("0.0.0.0", 8000, "sft", 1024, has_key=False)
    assert warn_stream is sys.stderr and warning.startswith("warning: listening on 0.0.0.0:8000")
    assert "no authentication without --api-key" in warning and "(network; no API key)" in line
    (_, warning), _ = banner("::", 80, "sft", 1024, has_key=True)
    assert "[::]:80" in warning and "requests need the API key" in warning
