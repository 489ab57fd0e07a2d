"""shell.exec: runs a program (no shell) and streams its output lines as events.

Off unless FLOWENGINE_ENABLE_SHELL=1: a workflow that can run programs on the server is a
remote code execution feature, so it must be asked for.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from ..errors import NodeError
from .api import ConfigKey, NodeContext, NodeType, Port

HOW_TO_ENABLE = "set FLOWENGINE_ENABLE_SHELL=1 (or --enable-shell) to allow running programs"


async def _pump(stream: asyncio.StreamReader, emit: Any, lines: list[str]) -> None:
    while True:
        raw = await stream.readline()
        if not raw:
            return
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        lines.append(line)
        emit(line)


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
    timeout_ms = ctx.setting("timeout_ms")
    try:
        process = await asyncio.create_subprocess_exec(
            command,
            *[str(arg) for arg in args],
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=ctx.setting("cwd"),
            env=None if env is None else {**os.environ, **{str(k): str(v) for k, v in env.items()}},
        )
    except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
        raise NodeError(f"cannot run {command!r}: {exc.strerror or exc}") from None
    stdout: list[str] = []
    stderr: list[str] = []
    try:
        async with asyncio.timeout(None if timeout_ms is None else timeout_ms / 1000):
            if stdin is not None:
                process.stdin.write(str(stdin).encode("utf-8"))
                await process.stdin.drain()
                process.stdin.close()
            await asyncio.gather(
                _pump(process.stdout, ctx.stdout, stdout),
                _pump(process.stderr, ctx.stderr, stderr),
            )
            exit_code = await process.wait()
    except TimeoutError:
        raise NodeError(f"{command!r} timed out after {timeout_ms:g} ms and was killed") from None
    finally:
        if process.returncode is None:  # timed out or cancelled: do not leave it running
            process.kill()
            await process.wait()
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
        ConfigKey("env", "Object", None, "Extra environment variables"),
        ConfigKey("stdin", "String", None, "Standard input"),
        ConfigKey("timeout_ms", "Number", None, "Kill the program after this many milliseconds"),
    ),
)

NODE_TYPES = [SHELL_EXEC]
