"""Command line: ``flowengine serve`` (the default), ``run``, ``validate`` and ``nodes``."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from . import __version__
from .config import Config, ConfigError, add_arguments, load_config
from .core.engine import decode_inputs
from .core.events import EventBus
from .core.model import Workflow, parse_workflow
from .core.redaction import install_log_redaction
from .errors import StoreRefused, ValidationError
from .nodes import NodeRegistry, PluginError, builtin_registry
from .runtime.build import build_engine
from .server.http_json import parse_json_text

__all__ = ["choose_loop", "main", "serve_main"]

log = logging.getLogger("flowengine")

_PY_LEVELS = {"error": logging.ERROR, "warn": logging.WARNING, "info": logging.INFO, "debug": logging.DEBUG, "trace": 5}


def configure_logging(level: str, process: str = "") -> None:
    """Log to stderr at ``level``; ``process`` (a worker's name) tags every line."""
    logging.addLevelName(5, "TRACE")
    handler = logging.StreamHandler(sys.stderr)
    tag = f" [{process}]" if process else ""
    handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s %(name)s{tag}: %(message)s"))
    logging.basicConfig(level=_PY_LEVELS[level], handlers=[handler])
    install_log_redaction()  # secret values never reach the log


class AccessLogger(AbstractAccessLogger):
    """One line per request, without the query string: ``?token=`` must not be logged."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %s %s %.1f ms", request.remote, request.method, request.path, response.status, time * 1000
        )


LoopFactory = Callable[[], asyncio.AbstractEventLoop]

# Printed when uvloop is asked for but not installed: the extra that brings it.
_NO_UVLOOP = (
    "flowengine: the uvloop event loop (--loop uvloop / FLOWENGINE_LOOP=uvloop) is not installed; "
    "install it with: pip install 'flowengine-server[fast]'"
)


def choose_loop(choice: str) -> tuple[str, LoopFactory | None]:
    """The event loop the server runs on: its name, and the factory that makes it (None for
    asyncio's own loop, made as ``asyncio.run`` makes it). ``auto`` takes uvloop when it can
    be imported; an explicit ``uvloop`` that cannot be raises ImportError."""
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise
        else:
            return "uvloop", uvloop.new_event_loop
    return "asyncio", None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flowengine", description="A small, fast workflow engine server.")
    parser.add_argument("--version", action="version", version=f"flowengine {__version__}")
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="start the server (the default)")
    add_arguments(serve)
    run = commands.add_parser("run", help="run a workflow file locally, without a server")
    run.add_argument("file", help="workflow JSON file")
    run.add_argument("--input", action="append", default=[], metavar="NAME=VALUE", help="an input (VALUE is JSON, else a string)")
    run.add_argument("--inputs-json", metavar="FILE", help="a JSON file with an object of inputs")
    validate = commands.add_parser("validate", help="check a workflow file and print its errors or 'ok'")
    validate.add_argument("file", help="workflow JSON file")
    commands.add_parser("nodes", help="list the node types")
    return parser


def _out(text: str) -> None:
    """Print to stdout; a reader that went away (``flowengine run wf.json | head``) silences
    the rest of the output instead of breaking the run that is printing it."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush is quiet too
        os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        argv.insert(0, "serve")  # "flowengine --bind ..." is "flowengine serve --bind ..."
    args = _parser().parse_args(argv)
    command = args.command
    if command == "serve":
        return _serve(args, argv)
    try:
        config = load_config(os.environ)
    except ConfigError as exc:
        print(f"flowengine: {exc}", file=sys.stderr)
        return 2
    configure_logging("warn" if config.log_level == "info" else config.log_level)
    try:
        registry = builtin_registry(enable_shell=config.enable_shell, plugins=config.plugins)
    except PluginError as exc:
        print(f"flowengine: {exc}", file=sys.stderr)
        return 2
    if command == "nodes":
        for node_type in registry.describe():
            _out(f"{node_type['type']:28} {node_type['category']:10} {node_type['description']}")
        return 0
    try:
        workflow = _load_workflow(args.file, registry)
    except (OSError, ValueError) as exc:
        # For validate the errors are the answer (stdout); for run they are why it did not run.
        if command == "validate":
            _out(f"{args.file}: {exc}")
        else:
            print(f"{args.file}: {exc}", file=sys.stderr)
        return 1
    if command == "validate":
        _out("ok")
        return 0
    try:
        inputs = _inputs(args)
    except (OSError, ValueError) as exc:
        print(f"inputs: {exc}", file=sys.stderr)
        return 1
    try:
        return asyncio.run(_run(config, workflow, inputs, registry))
    except KeyboardInterrupt:
        # asyncio.run has already cancelled the execution, which cancels its running nodes.
        print("flowengine: interrupted", file=sys.stderr)
        return 130


def serve_main() -> int:
    """The ``flowserver`` script: ``flowengine serve`` with its flags."""
    return main(["serve", *sys.argv[1:]])


def _serve(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from .server.app import make_app
    from .server.protocol import run_server
    from .server.supervisor import refusal
    from .server.worker import WORKER_ENV, WorkerLink, worker_spec

    try:
        config = load_config(os.environ, args)
        worker = worker_spec(os.environ)
    except (ConfigError, ValueError) as exc:
        print(f"flowengine: {exc}", file=sys.stderr)
        return 2
    os.environ.pop(WORKER_ENV, None)  # not for the programs a worker starts (shell.exec)
    refused = refusal(config)
    if refused is not None:
        print(f"flowengine: {refused}", file=sys.stderr)
        return 2
    try:
        loop_name, loop_factory = choose_loop(config.loop)
    except ImportError:
        print(_NO_UVLOOP, file=sys.stderr)
        return 2
    if config.workers > 1 and worker is None:
        return _supervise(argv, config, loop_name)
    configure_logging(config.log_level, f"worker {worker.slot}" if worker else "")
    try:
        app = make_app(config)
    except PluginError as exc:
        print(f"flowengine: {exc}", file=sys.stderr)
        return 2
    link = None
    if worker is not None:
        # The supervisor bound the address (port 0 resolved): every worker takes that port.
        config = dataclasses.replace(config, port=worker.port)
        link = WorkerLink(worker)
        app.cleanup_ctx.append(link.context)

    def announce() -> None:
        # Called once the socket is bound, so the line never precedes a bind error.
        if link is not None:
            log.info("worker %d (pid %d) listening on http://%s", link.spec.slot, os.getpid(), config.bind_address)
            link.listening()
            return
        log.info(
            "flowengine %s listening on http://%s (database: %s, event loop: %s)",
            __version__, config.bind_address, config.db_shown, loop_name,
        )

    try:
        run_server(
            app,
            host=config.host,
            port=config.port,
            on_listening=announce,
            loop_factory=loop_factory,
            access_log=logging.getLogger("aiohttp.access") if config.log_level in ("debug", "trace") else None,
            access_log_class=AccessLogger,
            shutdown_timeout=10,
            reuse_port=worker is not None,
            stop_on=link.stop_on if link is not None else None,
        )
    except StoreRefused as exc:
        print(f"flowengine: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"flowengine: cannot listen on {config.bind_address}: {exc.strerror or exc} (set BIND_ADDRESS or --bind)", file=sys.stderr)
        return 2
    log.info("worker %d stopped" if worker else "flowengine stopped", *([worker.slot] if worker else []))
    return 0


def _supervise(argv: Sequence[str], config: Config, loop_name: str) -> int:
    """``--workers N``: this process starts and watches N workers (server/supervisor.py)."""
    from .server.supervisor import supervise

    configure_logging(config.log_level, "supervisor")

    def announce(port: int, pids: list[int]) -> None:
        log.info(
            "flowengine %s listening on http://%s with %d workers (pids %s; database: %s, event loop: %s)",
            __version__, dataclasses.replace(config, port=port).bind_address, len(pids),
            ", ".join(map(str, pids)), config.db_shown, loop_name,
        )  # fmt: skip

    try:
        code = supervise(argv, config, announce)
    except OSError as exc:
        print(f"flowengine: cannot listen on {config.bind_address}: {exc.strerror or exc} (set BIND_ADDRESS or --bind)", file=sys.stderr)
        return 2
    if code == 0:
        log.info("flowengine stopped")
    return code


def _load_workflow(path: str, registry: NodeRegistry) -> Workflow:
    with open(path, "rb") as handle:
        document = parse_json_text(handle.read(), "the file")
    try:
        return parse_workflow(document, registry)
    except ValidationError as exc:
        raise ValueError(str(exc)) from None


def _inputs(args: argparse.Namespace) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    if args.inputs_json:
        with open(args.inputs_json, "rb") as handle:
            loaded = parse_json_text(handle.read(), args.inputs_json)
        if not isinstance(loaded, dict):
            raise ValueError(f"{args.inputs_json} must hold a JSON object")
        raw.update(loaded)
    for item in args.input:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--input {item!r}: expected NAME=VALUE")
        try:
            raw[name] = json.loads(text)
        except ValueError:
            raw[name] = text
    try:
        return decode_inputs(raw)
    except ValidationError as exc:
        raise ValueError(str(exc)) from None


def _print_event(event: dict[str, Any]) -> None:
    kind, node = event["type"], event.get("node_id")
    if "duration_ms" in event:  # microseconds when given, for the fraction the integer drops
        event = {**event, "duration_ms": event.get("duration_us", event["duration_ms"] * 1000) / 1000}
    if kind == "NodeStarted":
        line = f"start  {node} ({event['node_type']})"
    elif kind == "NodeCompleted":
        line = f"done   {node} in {event['duration_ms']:.1f} ms"
    elif kind == "NodeFailed" and event.get("cancelled"):
        line = f"cancel {node} after {event['duration_ms']:.1f} ms"
    elif kind == "NodeFailed":
        line = f"FAILED {node} after {event['duration_ms']:.1f} ms: {event['error']}"
    elif kind == "NodeSkipped":
        line = f"skip   {node}: {event['reason']}"
    else:
        detail = event["event"]
        text = detail.get("message") or detail.get("line") or json.dumps(detail)
        line = f"  {node or '-'} | {detail['event_type']}: {text}"
    _out(line)


async def _run(config: Config, workflow: Workflow, inputs: dict[str, Any], registry: NodeRegistry) -> int:
    """Run the workflow, printing a line per node as it goes, then the result as JSON.
    Exit code 0 only when the status is ``succeeded`` (the events' ``success``), else 1."""
    bus = EventBus()
    for kind in ("NodeStarted", "NodeCompleted", "NodeFailed", "NodeSkipped", "NodeEvent"):
        bus.observe(kind, _print_event)
    loop = asyncio.get_running_loop()
    async with build_engine(config, registry, bus) as engine:
        execution = engine.start(workflow, inputs)

        def interrupt() -> None:
            # The first Ctrl-C stops the execution cleanly (running nodes are cancelled and the
            # result is still printed); removing the handler lets a second one end the process.
            loop.remove_signal_handler(signal.SIGINT)
            execution.cancel("interrupted (Ctrl-C)", status="interrupted")

        try:
            loop.add_signal_handler(signal.SIGINT, interrupt)
        except (NotImplementedError, RuntimeError):  # Windows: asyncio.run's own handling applies
            pass
        result = await execution.run()
    _out(json.dumps(json.loads(result.response_json()), indent=2))
    if result.status == "interrupted":
        print("flowengine: interrupted", file=sys.stderr)
        return 130
    return 0 if result.success else 1
