"""shell.exec: runs a program (no shell) and streams its output lines as events.

Off unless FLOWENGINE_ENABLE_SHELL=1: a workflow that can run programs on the server is a
remote code execution feature, so it must be asked for.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from collections.abc import Mapping
from typing import Any

from ..errors import NodeError
from ..values import Value
from .api import MAX_DURATION_MS, ConfigKey, NodeContext, NodeType, Port, check_duration

HOW_TO_ENABLE = "set FLOWENGINE_ENABLE_SHELL=1 (or --enable-shell) to allow running programs"

_POSIX = os.name == "posix"
STOP_GRACE_S = 5.0  # how long a killed program's pipes may take to close

log = logging.getLogger("flowengine.nodes.shell")

# Lines longer than this are emitted in pieces of this size rather than failing the node.
LINE_LIMIT = 1 << 20

# The server's own settings (API keys, the JWT secret, FLOWENGINE_SECRET_*, a database URL with
# its password) are credentials: a program a workflow runs gets none of them unless the node
# passes one explicitly in its ``env``.
SERVER_ENV_PREFIX = "FLOWENGINE_"


def inherited_environment() -> dict[str, str]:
    """The server's environment without its own FLOWENGINE_* settings."""
    # Upper-cased for the check: Windows environment names ignore case.
    return {name: value for name, value in os.environ.items() if not name.upper().startswith(SERVER_ENV_PREFIX)}


async def _pump(stream: asyncio.StreamReader, emit: Any, lines: list[str]) -> None:
    """Emit each line as it arrives (the event is what makes the output live)."""
    while True:
        try:
            raw = await stream.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            raw = exc.partial  # the last line has no newline; b"" at the end of the stream
            if not raw:
                return
        except asyncio.LimitOverrunError as exc:
            raw = await stream.read(exc.consumed)
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        lines.append(line)
        emit(line)


async def _feed(stdin: asyncio.StreamWriter, text: str | bytes) -> None:
    """Write stdin alongside reading the output, so a big input cannot deadlock the pipes."""
    try:
        stdin.write(text if isinstance(text, bytes) else text.encode("utf-8"))
        await stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the program exited or closed stdin without reading it all: its exit code tells
    finally:
        stdin.close()


def _kill(process: asyncio.subprocess.Process) -> None:
    try:
        if _POSIX:
            os.killpg(process.pid, signal.SIGKILL)  # the program and anything it started
        else:
            process.kill()
    except ProcessLookupError:
        pass  # already gone


async def _stop(process: asyncio.subprocess.Process, command: str) -> None:
    """Kill the program and reap it. The unread output is drained: a full pipe buffer pauses
    reading, and a paused pipe never sees the end of file that ``wait()`` waits for."""
    _kill(process)
    try:
        async with asyncio.timeout(STOP_GRACE_S):
            assert process.stdout is not None and process.stderr is not None  # both are pipes
            await asyncio.gather(process.stdout.read(), process.stderr.read())
            await process.wait()
    except TimeoutError:  # something outside its process group holds the pipes open
        log.warning("shell.exec: %r was killed but its output pipes stayed open", command)


def _stdin_text(ctx: NodeContext) -> str | bytes | None:
    """What the program reads on standard input: the ``stdin`` input (text as it is, Bytes as
    they are, anything else as JSON, as upstream writes it) or config; or the ``input`` input
    (what ``output`` -> ``input`` wiring delivers) always as JSON, which the upstream SDK's
    generated scripts read with ``json.load(sys.stdin)``."""
    stdin = ctx.input("stdin", None)
    piped = ctx.inputs.get("input")
    if stdin is not None and piped is not None:
        raise NodeError("give either input 'stdin' or input 'input', not both")
    if piped is not None:
        return json.dumps(piped.to_python(), default=_json_fallback, ensure_ascii=False)
    if stdin is None:
        stdin = ctx.setting("stdin")
    if stdin is None or isinstance(stdin, (str, bytes)):
        return stdin
    return json.dumps(stdin, default=_json_fallback, ensure_ascii=False)


def _json_fallback(obj: Any) -> Any:
    if isinstance(obj, bytes):
        return obj.decode("utf-8", errors="replace")
    raise TypeError(f"{type(obj).__name__} cannot be written as JSON")


def _environment(ctx: NodeContext) -> dict[str, str]:
    """The server's environment without FLOWENGINE_*, the names ``env_passthrough`` lists (the
    same rule: never a FLOWENGINE_* one), then the node's own ``env``."""
    environment = inherited_environment()
    for name in ctx.setting("env_passthrough") or ():
        if isinstance(name, str) and not name.upper().startswith(SERVER_ENV_PREFIX) and name in os.environ:
            environment[name] = os.environ[name]
    environment.update({str(k): str(v) for k, v in (ctx.setting("env") or {}).items()})
    return environment


def _parsed_output(text: str) -> Value:
    """Standard output parsed as JSON when it is JSON (a Json value, whatever it holds), else
    the text (upstream's ``output``)."""
    try:
        return Value("Json", json.loads(text, parse_constant=_not_json))
    except ValueError:
        return Value("String", text)


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # Python's json would take NaN and Infinity


async def _exec(ctx: NodeContext) -> dict[str, Any]:
    command = ctx.require("command")
    args = ctx.input("args", None)
    if args is None:
        args = ctx.setting("args", [])
    if not isinstance(command, str) or not command:
        raise NodeError("'command' must be a non-empty string")
    if isinstance(args, str):  # upstream splits a string of arguments on whitespace
        args = args.split()
    if not isinstance(args, list):
        raise NodeError("'args' must be an array")
    arguments = [arg if isinstance(arg, str) else json.dumps(arg) for arg in args]
    stdin = _stdin_text(ctx)
    cwd = ctx.setting("cwd")
    if cwd is None:
        cwd = ctx.setting("workdir")
    if cwd is not None and not os.path.isdir(cwd):
        raise NodeError(f"cwd {cwd!r} is not a directory")
    timeout_ms = ctx.setting("timeout_ms")
    timeout_s = ctx.setting("timeout")
    limit = timeout_ms / 1000 if timeout_ms is not None else timeout_s
    stream = ctx.setting("stream_output")
    if ctx.setting("shell"):
        # Upstream's form: the command and its arguments joined by spaces, run by sh -c.
        program, arguments = "sh", ["-c", " ".join([command, *arguments])]
    else:
        program = command
    try:
        process = await asyncio.create_subprocess_exec(
            program,
            *arguments,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=cwd,
            env=_environment(ctx),
            limit=LINE_LIMIT,
            # Its own process group, so a timeout can kill whatever it started as well.
            start_new_session=_POSIX,
        )
    except OSError as exc:  # not found, not executable, ...
        raise NodeError(f"cannot run {program!r}: {exc.strerror or exc}") from None
    stdout: list[str] = []
    stderr: list[str] = []
    assert process.stdout is not None and process.stderr is not None  # both are pipes
    # Lines stream as events unless stream_output is false (upstream's default is false; ours,
    # when the key is left out, is to stream, as before the key existed).
    quiet = stream is False
    work = [
        _pump(process.stdout, _ignore if quiet else ctx.stdout, stdout),
        _pump(process.stderr, _ignore if quiet else ctx.stderr, stderr),
    ]
    if stdin is not None:
        assert process.stdin is not None  # a pipe whenever there is input to feed
        work.append(_feed(process.stdin, stdin))
    finished = False
    try:
        async with asyncio.timeout(limit):
            await asyncio.gather(*work)
            exit_code = await process.wait()
            finished = True
    except TimeoutError:
        if timeout_ms is not None:
            raise NodeError(f"{command!r} timed out after {timeout_ms:g} ms and was killed") from None
        raise NodeError(f"{command!r} timed out after {timeout_s:g} s (config timeout) and was killed") from None
    finally:
        if not finished:  # timed out or cancelled: do not leave anything running
            await _stop(process, command)
    if exit_code != 0 and ctx.setting("fail_on_error") is not False:
        last = f": {stderr[-1]}" if stderr else ""
        raise NodeError(f"{command!r} exited with code {exit_code}{last}")
    out_text = _captured(stdout, ctx.setting("capture_stdout"), ctx.setting("strip_trailing_newline"))
    err_text = _captured(stderr, ctx.setting("capture_stderr"), None)
    return {
        "stdout": out_text,
        "stderr": err_text,
        "exit_code": exit_code,
        "output": _parsed_output(out_text),
        "success": exit_code == 0,
    }


def _ignore(line: str) -> None:
    pass


def _captured(lines: list[str], capture: bool | None, strip: bool | None) -> str:
    """The text of an output stream. Left out, ``strip_trailing_newline`` keeps what this node
    always did (the lines joined, so the last newline goes); true strips every trailing newline,
    false keeps one after each line, as upstream does."""
    if capture is False:
        return ""
    if strip is False:
        return "".join(line + "\n" for line in lines)
    text = "\n".join(lines)
    return text.rstrip("\n") if strip else text


def _check(config: Mapping[str, Any]) -> None:
    check_duration(config, "timeout_ms", minimum=1)
    args = config.get("args")
    if args is not None and not (args.type in ("Array", "String") or isinstance(args.to_python(), list)):
        raise ValueError(f"args must be an Array (or a String of arguments separated by spaces), got {args.type}")
    if config.get("timeout") is not None:
        if config.get("timeout_ms") is not None:
            raise ValueError("give either timeout_ms (milliseconds) or timeout (seconds), not both")
        seconds = config["timeout"].value
        if not 0 < seconds <= MAX_DURATION_MS / 1000:
            raise ValueError(f"timeout must be from more than 0 to {MAX_DURATION_MS // 1000} seconds, got {seconds!r}")
    if config.get("cwd") is not None and config.get("workdir") is not None:
        raise ValueError("give either cwd or workdir (the same setting), not both")
    passthrough = config.get("env_passthrough")
    if passthrough is not None:
        for name in passthrough.to_python():
            if not isinstance(name, str) or not name:
                raise ValueError("env_passthrough must be an array of environment variable names")
            if name.upper().startswith(SERVER_ENV_PREFIX):
                raise ValueError(
                    f"env_passthrough: {name!r} is one of the server's own settings (FLOWENGINE_*), never passed to"
                    " a program; pass what it needs in env (a Secret for a credential)"
                )


SHELL_EXEC = NodeType(
    type="shell.exec",
    description="Runs a program with arguments (no shell unless config 'shell'), streaming its output lines",
    category="shell",
    run=_exec,
    inputs=(
        Port("command", "The program to run", required=True, type="String"),
        Port("args", "Its arguments", type="Array"),
        Port("stdin", "Written to its standard input: text as it is, anything else as JSON"),
        Port("input", "Written to its standard input as JSON (what output -> input wiring delivers)"),
    ),
    outputs=(
        Port("stdout", "Standard output", type="String"),
        Port("stderr", "Standard error", type="String"),
        Port("exit_code", "Exit code", type="Number"),
        Port("output", "Standard output parsed as JSON when it is JSON, else the text"),
        Port("success", "Whether it exited with code 0", type="Bool"),
    ),
    config=(
        ConfigKey("command", "String", None, "The program (when no 'command' input is connected)"),
        ConfigKey("args", "Any", None, "Arguments: an Array, or a String split on whitespace"),
        ConfigKey("cwd", "String", None, "Working directory"),
        ConfigKey("workdir", "String", None, "Working directory (the upstream name of cwd)"),
        ConfigKey("env", "Object", None, "Extra environment variables (may hold Secrets)", secret=True),
        ConfigKey(
            "env_passthrough", "Array", None, "Names of server environment variables to pass (never FLOWENGINE_*)"
        ),
        ConfigKey("stdin", "String", None, "Standard input"),
        ConfigKey("timeout_ms", "Number", None, "Kill the program after this many milliseconds"),
        ConfigKey("timeout", "Number", None, "Kill the program after this many seconds (not with timeout_ms)"),
        ConfigKey("shell", "Bool", None, "Run the command and its arguments, joined by spaces, with sh -c"),
        ConfigKey("stream_output", "Bool", None, "Emit StdoutLine/StderrLine events (left out: yes)"),
        ConfigKey("capture_stdout", "Bool", None, "Keep standard output in 'stdout'/'output' (left out: yes)"),
        ConfigKey("capture_stderr", "Bool", None, "Keep standard error in 'stderr' (left out: yes)"),
        ConfigKey(
            "strip_trailing_newline", "Bool", None, "true: strip every trailing newline; false: keep them"
        ),
        ConfigKey("fail_on_error", "Bool", None, "false: a non-zero exit succeeds with success false (left out: fail)"),
    ),
    check_config=_check,
)

NODE_TYPES = [SHELL_EXEC]
