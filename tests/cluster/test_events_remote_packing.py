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


def test_the_bus_forwards_what_it_publishes_and_never_what_it_received_from_another_process():
    bus = EventBus()
    forwarded, observed = [], []
    bus.forward = lambda *event: forwarded.append(event)
    bus.observe("WorkflowCompleted", observed.append)
    text = '{"type":"WorkflowCompleted","execution_id":"x","workflow_id":"w","seq":2}'
    bus.publish(text, "WorkflowCompleted", "x", "w")
    assert forwarded == [] and len(observed) == 1  # nobody elsewhere wants it
    bus.forwarding = True
    bus.publish(text, "WorkflowCompleted", "x", "w")
    assert forwarded == [(text, "WorkflowCompleted", "x", "w")] and len(observed) == 2
    # From another process: to this process's listeners only (the other one ran the observers).
    bus.publish_received(text, "WorkflowCompleted", "x", "w")
    assert len(forwarded) == 1 and len(observed) == 2


def test_an_execution_nobody_here_records_or_listens_to_still_builds_its_events_for_another_process():
    from flowengine.core.events import ExecutionEvents

    bus = EventBus()
    forwarded = []
    bus.forward = lambda *event: forwarded.append(event)
    events = ExecutionEvents(bus, "x", "w", record=False)
    assert not events.wanted
    events.emit("NodeStarted", {"node_id": "a"})
    assert forwarded == []
    bus.forwarding = True
    assert events.wanted
    events.emit("NodeStarted", {"node_id": "b"})
    ((text, event_type, execution_id, workflow_id),) = forwarded
    assert (event_type, execution_id, workflow_id) == ("NodeStarted", "x", "w")
    assert text.startswith('{"type":"NodeStarted","execution_id":"x","workflow_id":"w","seq":2,"node_id":"b"')
