"""Unit tests for the execution slots of flowengine.runtime.executions (what admits running executions)."""

from __future__ import annotations

from flowengine.runtime.executions import _Slots


async def test_free_slots_are_taken_at_once_then_waiters_are_served_in_order():
    slots = _Slots(2)
    assert slots.take() and slots.take()
    assert not slots.take()
    first, second = slots.queue(), slots.queue()
    assert not slots.take()  # nobody jumps the queue
    slots.give_back()
    assert first.done() and not second.done()
    slots.give_back()
    assert second.done()
    slots.give_back()
    slots.give_back()
    assert slots.free == 2 and slots.take()


async def test_a_waiter_that_leaves_frees_its_place_or_the_slot_it_was_handed():
    slots = _Slots(1)
    assert slots.take()
    gone, staying = slots.queue(), slots.queue()
    slots.leave(gone)  # still waiting: just leaves the queue
    assert gone.cancelled()
    slots.give_back()
    assert staying.done()
    slots.leave(staying)  # handed a slot, then gave up: the slot is free again
    assert slots.free == 1 and slots.take()

    lonely = _Slots(1)
    assert lonely.take()
    waiter = lonely.queue()
    lonely.leave(waiter)
    lonely.give_back()
    assert lonely.take()  # no cancelled waiter left behind to block the free slot
