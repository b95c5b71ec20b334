"""`gptstack serve` (= python -m model.serve): an OpenAI-compatible HTTP server for a checkpoint or export.

    gptstack serve --checkpoint runs/sft                  # http://127.0.0.1:8000/v1, this machine only
    gptstack serve --checkpoint runs/sft --host 0.0.0.0 --api-key "$KEY"

The API is model/chat/openai_api.py (FastAPI); uvicorn runs it on a socket bound here first, so a bad address or a
busy port is one error line before the model loads, and --port 0 (a free port, printed) works.
"""
from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import sys
from pathlib import Path

from gptstack.cli_args import ArgumentParser
from gptstack.errors import GPTStackError, InputError, exit_with_error
from model.chat.load import add_model_arguments, load_chat

LOOPBACK = "127.0.0.1"
KEY_ENV = "GPTSTACK_API_KEY"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(
        prog="gptstack serve",
        description="Serve a model over OpenAI's chat completions API (POST /v1/chat/completions, streamed or not; "
                    "GET /v1/models), one request at a time. It listens on 127.0.0.1 (this machine only) unless "
                    "--host says otherwise; it checks no password unless --api-key (or $GPTSTACK_API_KEY) gives one.",
        epilog="examples:\n  gptstack serve --checkpoint runs/sft --port 8000\n"
               "  curl http://127.0.0.1:8000/v1/chat/completions -H 'Content-Type: application/json' \\\n"
               "       -d '{\"model\": \"sft\", \"messages\": [{\"role\": \"user\", \"content\": \"你好\"}]}'\n"
               "  GPTSTACK_API_KEY=secret gptstack serve --checkpoint runs/sft --host 0.0.0.0")
    add_model_arguments(parser)
    parser.add_argument("--host", default=LOOPBACK,
                        help="address to listen on; anything but a loopback address exposes the model to the "
                             "network (a warning is printed): give --api-key then")
    parser.add_argument("--port", type=int, default=8000, help="TCP port; 0 picks a free one (printed)")
    parser.add_argument("--api-key", default=os.environ.get(KEY_ENV),
                        help=f"require 'Authorization: Bearer KEY' on every request (401 otherwise); default "
                             f"${KEY_ENV}, else none. On a shared machine prefer the variable: a flag shows in ps")
    parser.add_argument("--model-name", default=None,
                        help="the model id /v1/models lists and replies carry (default: the checkpoint's folder name)")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error("--port must be from 0 to 65535")
    if args.api_key is not None and not args.api_key.strip():
        parser.error("--api-key is empty")
    return args


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or one error line (bad address, port in use, no permission)."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise InputError(f"--host {host}: {e.strerror}") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as e:
        sock.close()
        raise InputError(f"--host {host} --port {port}: cannot listen there ({e.strerror})") from None
    return sock


def banner(host: str, port: int, name: str, block_size: int, has_key: bool) -> list[tuple]:
    """(stream, line) to print once listening: where, and a warning on stderr for an address off this machine."""
    shown = f"[{host}]" if ":" in host else host
    lines = []
    if not is_loopback(host):
        lines.append((sys.stderr, f"warning: listening on {shown}:{port}, reachable from other machines; " + (
            "requests need the API key" if has_key else "there is no authentication without --api-key: anyone who "
            "can reach this address can use the model")))
    where = "loopback only: this machine" if is_loopback(host) else "network"
    lines.append((sys.stdout, f"serving {name} ({block_size:,}-token context) at http://{shown}:{port}/v1 ({where}; "
                              f"{'API key required' if has_key else 'no API key'}); Ctrl-C stops"))
    return lines


def serve(args: argparse.Namespace) -> None:
    import uvicorn

    from model.chat.openai_api import create_app

    sock = bind(args.host, args.port)  # before the model loads: a busy port costs no waiting
    engine, chat_format = load_chat(args.checkpoint, args.device, args.dtype, args.seed)
    path = Path(args.checkpoint).resolve()
    name = args.model_name or (path.name if path.name not in ("model", "checkpoints") else path.parent.name)
    app = create_app(engine, chat_format, name, args.api_key)
    host, port = sock.getsockname()[:2]
    for stream, line in banner(host, port, name, engine.block_size, bool(args.api_key)):
        print(line, file=stream, flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=2)
    uvicorn.Server(config).run(sockets=[sock])


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        serve(args)
    except GPTStackError as e:
        exit_with_error(e)


if __name__ == "__main__":
    main()
