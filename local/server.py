"""`make dev`: the whole API on http://127.0.0.1:3000 with no AWS account.

Starts moto in server mode on 127.0.0.1, creates in it the tables, secrets,
queues and SES identity that template.yaml declares, and serves the
template's routes through the local gateway.  A background thread delivers
every queue to the function the template names as its consumer
(local/queues.py).  Every email is printed and saved as JSON in OUTBOX_DIR
(default .local/outbox/).

Environment:
  PORT               port of the API (default 3000)
  OUTBOX_DIR         where emails are saved (default .local/outbox)
  AWS_ENDPOINT_URL   use this AWS-compatible endpoint instead of the emulator
                     (its resources are created if missing)
  WEBAUTHN_RP_ID     passkeys' relying party (default localhost: open the page at
  WEBAUTHN_ORIGINS   http://localhost:<port>/ui, the default origin)
  STACK_NAME         with real AWS credentials and no AWS_ENDPOINT_URL: serve
                     against that deployed stack's tables and secrets
  any template setting (ARGON2_MEMORY_KIB, BCRYPT_COST, OTP_TTL_MINUTES, ...)
  overrides the default
"""

from __future__ import annotations

import faulthandler
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from local.template import ROOT, Stack, load

MAX_REQUEST_BYTES = 10 * 1024 * 1024  # API Gateway's own payload limit


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _print_email(message: dict[str, Any]) -> None:
    bar = "-" * 72
    print(f"\n{bar}\nEMAIL to {message['to']}: {message['subject']}\n\n{message['text'].strip()}\n{bar}\n", flush=True)


def _deployed_stack(name: str, region: str) -> dict[str, str]:
    import boto3

    resources = boto3.client("cloudformation", region_name=region).describe_stack_resources(StackName=name)
    return {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources["StackResources"]}


def _deployed_parameters(name: str, region: str) -> dict[str, str]:
    """A deployed stack's parameter values, for the template's parameters (a NoEcho
    one reads back masked, so the template's default stands in for it)."""
    import boto3

    (deployed,) = boto3.client("cloudformation", region_name=region).describe_stacks(StackName=name)["Stacks"]
    declared = load()["Parameters"]
    return {
        p["ParameterKey"]: p.get("ResolvedValue", p["ParameterValue"])
        for p in deployed.get("Parameters", [])
        if p["ParameterKey"] in declared and not declared[p["ParameterKey"]].get("NoEcho")
    }


class DeployedStack(Stack):
    """The template, with physical names taken from a deployed stack."""

    physical: dict[str, str] = {}

    def physical_name(self, logical_id: str) -> str:
        return self.physical.get(logical_id) or super().physical_name(logical_id)


def configure_environment(stack: Stack) -> dict[str, str]:
    """The functions' environment from the template; the shell's values win."""
    env = stack.service_environment()
    env["POWERTOOLS_LOG_LEVEL"] = "WARNING"
    env["POWERTOOLS_TRACE_DISABLED"] = "true"
    env["POWERTOOLS_METRICS_DISABLED"] = "true"
    for key, value in env.items():
        os.environ.setdefault(key, value)
    return env


def main() -> int:
    port = int(os.environ.get("PORT", "3000"))
    outbox_dir = Path(os.environ.get("OUTBOX_DIR", ".local/outbox"))
    if not outbox_dir.is_absolute():
        outbox_dir = Path.cwd() / outbox_dir
    region = os.environ.setdefault("AWS_DEFAULT_REGION", os.environ.get("AWS_REGION", "us-east-1"))
    os.environ.setdefault("AWS_REGION", region)

    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    deployed = os.environ.get("STACK_NAME") if not endpoint else None
    moto_server = None
    started = time.perf_counter()

    if deployed:
        DeployedStack.physical = _deployed_stack(deployed, region)
        stack: Stack = DeployedStack(name=deployed, region=region)
        where = f"AWS stack {deployed} ({region})"
    else:
        # Template parameters the shell sets for the gateway itself (its CORS headers).
        overrides = {"CorsAllowedOrigins": os.environ["CORS_ALLOWED_ORIGINS"]} if os.environ.get("CORS_ALLOWED_ORIGINS") else {}
        stack = Stack(name="carekey-local", region=region, overrides=overrides)
        if not endpoint:
            for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
                os.environ[key] = "local"
            os.environ.pop("AWS_PROFILE", None)
            os.environ.pop("AWS_SESSION_TOKEN", None)
            from moto.server import ThreadedMotoServer

            from local.emulator import serialise_dynamodb

            serialise_dynamodb()
            logging.getLogger("werkzeug").setLevel(logging.ERROR)
            moto_port = _free_port()
            moto_server = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
            moto_server.start()
            endpoint = f"http://127.0.0.1:{moto_port}"
            os.environ["AWS_ENDPOINT_URL"] = endpoint
            where = f"embedded AWS emulator at {endpoint}"
        else:
            where = f"AWS endpoint {endpoint}"

    # Passkeys are bound to the page's origin: http://localhost:<port> (browsers refuse an IP as RP ID).
    os.environ.setdefault("WEBAUTHN_ORIGINS", f"http://localhost:{port}")
    configure_environment(stack)
    # Tokens name the API's URL as their issuer; here that is this server.
    if not os.environ.get("TOKEN_ISSUER"):
        os.environ["TOKEN_ISSUER"] = f"http://127.0.0.1:{port}"
    if deployed:
        os.environ["SIGNING_SECRET_ID"] = stack.physical_name("SigningKeySecret")
        os.environ["PEPPER_SECRET_ID"] = stack.physical_name("PepperSecret")

    import boto3

    from local.emulator import provision
    from local.gateway import Gateway
    from local.outbox import Outbox
    from local.queues import QueuePump, describe

    boto3.setup_default_session(region_name=region)
    outbox = Outbox(outbox_dir, echo=_print_email)
    outbox.attach(boto3.DEFAULT_SESSION)
    if not deployed:
        provision(stack, boto3.DEFAULT_SESSION, endpoint_url=endpoint)

    if moto_server is not None:
        # Lets `make audit-verify` and `make audit-export` find this emulator.
        state = ROOT / ".local" / "emulator.json"
        state.parent.mkdir(parents=True, exist_ok=True)
        state.write_text(json.dumps({"endpoint": endpoint, "stack": stack.name, "pid": os.getpid()}))

    # Against a deployed stack, Lambda's own event source mappings consume the queues.
    pump = None if deployed else QueuePump(stack, boto3.DEFAULT_SESSION, endpoint_url=endpoint)
    gateway = Gateway(stack, queues=pump, drain_queues=False)
    # Import every function now, so the first request is as fast as the rest.
    from local.functions import handler

    for route in gateway.routes:
        handler(stack, route.function)
        if route.authorizer:
            handler(stack, route.authorizer)
    for source in pump.sources if pump else []:
        handler(stack, source.function)

    server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(gateway))
    server.daemon_threads = True
    url = f"http://127.0.0.1:{server.server_address[1]}"
    print(
        f"CareKey local API ready on {url} ({len(gateway.routes)} routes, {where}, "
        f"emails in {outbox_dir}, started in {time.perf_counter() - started:.1f}s). Ctrl-C stops it.",
        flush=True,
    )
    if pump is not None:
        print(f"Queues delivered in the background: {describe(pump)}.", flush=True)
        pump.start()

    stop = threading.Event()

    def _stop(*_: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    # Wait in short steps: Python runs signal handlers in the main thread only, and a
    # SIGINT the kernel hands to another thread does not wake a wait without a timeout.
    while not stop.wait(0.5):
        pass
    threading.Thread(target=_leave_if_stuck, args=(STOP_SECONDS,), daemon=True).start()
    server.shutdown()
    server.server_close()
    if pump is not None:
        pump.stop()
    if moto_server is not None:
        moto_server.stop()
    print("CareKey local API stopped.", flush=True)
    return 0


# Ctrl-C always ends the server: a step of the clean stop that hangs (a queue
# delivery or an emulator call that does not return) is shown, then the process leaves.
STOP_SECONDS = 15.0


def _leave_if_stuck(seconds: float) -> None:
    time.sleep(seconds)
    print(f"CareKey local API: the clean stop took over {seconds:.0f} s; where each thread was:", flush=True)
    faulthandler.dump_traceback(file=sys.stdout, all_threads=True)
    print("CareKey local API stopped.", flush=True)
    os._exit(0)


def _handler_for(gateway: Any) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "CareKeyLocal"
        sys_version = ""

        def _serve(self) -> None:
            started = time.perf_counter()
            split = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_REQUEST_BYTES:
                self._send(413, {"Content-Type": "application/json"}, b'{"error": "Payload too large", "message": "Request too large."}')
                self.close_connection = True
                return
            body = self.rfile.read(length) if length else None
            response = gateway.handle(
                self.command,
                split.path,
                list(self.headers.items()),
                parse_qsl(split.query, keep_blank_values=True),
                body,
                self.client_address[0],
            )
            self._send(response.status, response.headers, response.body)
            ms = (time.perf_counter() - started) * 1000
            print(f"{self.command} {split.path} -> {response.status} ({ms:.0f} ms)", flush=True)

        def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def __getattr__(self, name: str) -> Any:
            # Every method (TRACE, QUERY, ...) goes to the gateway, which routes it
            # like API Gateway: the path's ANY route answers 405 with Allow.
            if name.startswith("do_"):
                return self._serve
            raise AttributeError(name)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the request line is printed by _serve
            return

    return Handler


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    code = main()
    # Stopped: leave now. A worker thread still inside a call to the emulator just
    # stopped (an SDK call waiting out its read timeout) must not hold the exit.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
