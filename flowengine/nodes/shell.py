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
from typing import Any

from ..errors import NodeError
from .api import ConfigKey, NodeContext, NodeType, Port, check_duration

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


async def _feed(stdin: asyncio.StreamWriter, text: str) -> None:
    """Write stdin alongside reading the output, so a big input cannot deadlock the pipes."""
    try:
        stdin.write(text.encode("utf-8"))
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


async def _exec(ctx: NodeContext) -> dict[str, Any]:
    command = ctx.require("command")
    args = ctx.input("args", None)
    if args is None:
        args = ctx.setting("args", [])
    if not isinstance(command, str) or not command:
        raise NodeError("'command' must be a non-empty string")
    if not isinstance(args, list):
        raise NodeError("'args' must be an array")
    env = ctx.setting("env")
    stdin = ctx.input("stdin", None)
    if stdin is None:
        stdin = ctx.setting("stdin")
    cwd = ctx.setting("cwd")
    if cwd is not None and not os.path.isdir(cwd):
        raise NodeError(f"cwd {cwd!r} is not a directory")
    timeout_ms = ctx.setting("timeout_ms")
    try:
        process = await asyncio.create_subprocess_exec(
            command,
            *[arg if isinstance(arg, str) else json.dumps(arg) for arg in args],
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=cwd,
            env={**inherited_environment(), **{str(k): str(v) for k, v in (env or {}).items()}},
            limit=LINE_LIMIT,
            # Its own process group, so a timeout can kill whatever it started as well.
            start_new_session=_POSIX,
        )
    except OSError as exc:  # not found, not executable, ...
        raise NodeError(f"cannot run {command!r}: {exc.strerror or exc}") from None
    stdout: list[str] = []
    stderr: list[str] = []
    assert process.stdout is not None and process.stderr is not None  # both are pipes
    work = [_pump(process.stdout, ctx.stdout, stdout), _pump(process.stderr, ctx.stderr, stderr)]
    if stdin is not None:
        assert process.stdin is not None  # a pipe whenever there is input to feed
        work.append(_feed(process.stdin, stdin if isinstance(stdin, str) else json.dumps(stdin)))
    finished = False
    try:
        async with asyncio.timeout(None if timeout_ms is None else timeout_ms / 1000):
            await asyncio.gather(*work)
            exit_code = await process.wait()
            finished = True
    except TimeoutError:
        raise NodeError(f"{command!r} timed out after {timeout_ms:g} ms and was killed") from None
    finally:
        if not finished:  # timed out or cancelled: do not leave anything running
            await _stop(process, command)
    if exit_code != 0:
        last = f": {stderr[-1]}" if stderr else ""
        raise NodeError(f"{command!r} exited with code {exit_code}{last}")
    return {"stdout": "\n".join(stdout), "stderr": "\n".join(stderr), "exit_code": exit_code}


SHELL_EXEC = NodeType(
    type="shell.exec",
    description="Runs a program with arguments (no shell), streaming its output lines",
    category="shell",
    run=_exec,
    inputs=(
        Port("command", "The program to run", required=True, type="String"),
        Port("args", "Its arguments", type="Array"),
        Port("stdin", "Text written to its standard input", type="String"),
    ),
    outputs=(
        Port("stdout", "Standard output", type="String"),
        Port("stderr", "Standard error", type="String"),
        Port("exit_code", "Exit code", type="Number"),
    ),
    config=(
        ConfigKey("command", "String", None, "The program (when no 'command' input is connected)"),
        ConfigKey("args", "Array", None, "Arguments"),
        ConfigKey("cwd", "String", None, "Working directory"),
        ConfigKey("env", "Object", None, "Extra environment variables (may hold Secrets)", secret=True),
        ConfigKey("stdin", "String", None, "Standard input"),
        ConfigKey("timeout_ms", "Number", None, "Kill the program after this many milliseconds"),
    ),
    check_config=lambda config: check_duration(config, "timeout_ms", minimum=1),
)

NODE_TYPES = [SHELL_EXEC]
