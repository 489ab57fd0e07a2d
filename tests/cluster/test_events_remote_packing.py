"""How events for another process are packed into notifications: in order, every payload
under PostgreSQL's limit counted in bytes, an event too large for one in a spill row; and the
filters a process announces for its listeners."""

from __future__ import annotations

from flowengine.core.events import EventBus
from flowengine.runtime.pgevents import NOTIFY_LIMIT, _listener_filters, _Message


def _unpack(message: _Message) -> list[str]:
    spills = dict(zip(message.spill_ids, message.spills))
    texts = []
    for payload in message.payloads:
        for line in payload.split("\n"):
            texts.append(spills[line[1:]] if line.startswith("#") else line)
    return texts


def test_events_are_packed_in_order_under_the_limit_in_bytes_and_large_ones_spill():
    texts = [f'{{"seq":{n},"text":"{"é" * (n * 37 % 900)}"}}' for n in range(1, 400)]
    texts[100] = '{"seq":101,"text":"' + "ü" * 5_000 + '"}'  # 10,000 bytes: fits no notification
    message = _Message()
    message.add("channel", texts, len(texts))
    assert all(len(payload.encode()) <= NOTIFY_LIMIT for payload in message.payloads)
    assert len(message.payloads) > 1
    assert message.spill_ids and message.spilled == 1
    assert _unpack(message) == texts
    assert set(message.channels) == {"channel"} and message.events == len(texts)


def test_a_process_announces_each_filter_once_and_everything_for_an_unfiltered_listener():
    bus = EventBus()
    bus.subscribe(workflow_id="w", types=["NodeCompleted", "NodeFailed"])
    bus.subscribe(types=["NodeFailed", "NodeCompleted"], workflow_id="w")
    bus.subscribe(execution_id="x")
    assert _listener_filters(bus.listeners) == [["x", None, None], [None, "w", ["NodeCompleted", "NodeFailed"]]]
    bus.subscribe()
    assert _listener_filters(bus.listeners) == [[None, None, None]]
    assert _listener_filters(set()) == []
