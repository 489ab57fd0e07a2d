"""An execution's recorded events in the compact form the history stores, and their expansion
back to the exact texts its listeners got.

Published, an event repeats what every event of its execution shares::

    {"type":"NodeStarted","execution_id":"0193...","workflow_id":"greet","seq":2,"node_id":"a",...,"timestamp":"2026-11-29T10:44:00.497Z"}

Recorded, it keeps only its own part, and its moment as milliseconds after the record's origin
(the first event's)::

    {"type":"NodeStarted","seq":2,"node_id":"a",...,"t":0}

A record is a header line ``@2 <origin in Unix milliseconds>`` followed by one event per line
(serialised JSON never holds a raw line break). The ids come back from the execution's row.
Expanding is string work only, no JSON parsing, so the text rebuilt is the one that was sent.
History written before this form is a JSON array of the published texts, read as it is.
"""

from __future__ import annotations

from collections.abc import Iterable
from json.encoder import encode_basestring as quote  # what events.quote is

from .timestamps import millis_timestamp

__all__ = ["compact_event", "event_head", "expand", "expand_json", "full_event", "pack"]

_HEADER = "@2 "
_SEQ = '","seq":'  # follows the type in a compact event; type names hold no quote
_OFFSET = ',"t":'


def event_head(execution_id: str, workflow_id: str) -> str:
    """What follows the type in every published event of one execution, up to its seq."""
    return f'","execution_id":{quote(execution_id)},"workflow_id":{quote(workflow_id)},"seq":'


def full_event(event_type: str, head: str, body: str, millis: int) -> str:
    """A published event: ``body`` is the seq and the fields (``'2,"node_id":"a"'``)."""
    return f'{{"type":"{event_type}{head}{body},"timestamp":"{millis_timestamp(millis)}"}}'


def compact_event(event_type: str, body: str, offset: int) -> str:
    """The same event as recorded, ``offset`` milliseconds after the record's origin."""
    return f'{{"type":"{event_type}{_SEQ}{body}{_OFFSET}{offset}}}'


def pack(lines: Iterable[str], origin: int) -> str:
    """A record as the history stores it."""
    return "\n".join((f"{_HEADER}{origin}", *lines))


def _expand_line(line: str, head: str, origin: int) -> str:
    type_end = line.index(_SEQ)
    rest, _, offset = line[type_end + len(_SEQ) :].rpartition(_OFFSET)
    return f'{line[:type_end]}{head}{rest},"timestamp":"{millis_timestamp(origin + int(offset[:-1]))}"}}'


def expand(lines: Iterable[str], origin: int, execution_id: str, workflow_id: str) -> list[str]:
    """Compact events as the texts that were published."""
    head = event_head(execution_id, workflow_id)
    return [_expand_line(line, head, origin) for line in lines]


def expand_json(stored: str | None, execution_id: str, workflow_id: str) -> str | None:
    """A stored record as a JSON array of the published texts (None stays None)."""
    if stored is None or not stored.startswith(_HEADER):
        return stored  # None, or history written before the compact form: already that array
    header, _, body = stored.partition("\n")
    if not body:
        return "[]"
    return "[" + ",".join(expand(body.split("\n"), int(header[len(_HEADER) :]), execution_id, workflow_id)) + "]"
