"""The debouncer on injected events and a fake clock: quiet period, latency cap, holds, open files."""

from __future__ import annotations

import pytest

from photoembed.watch.debounce import Debouncer, under
from photoembed.watch.events import RawEvent


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def debouncer(clock: FakeClock) -> Debouncer:
    return Debouncer(quiet_s=1.0, max_latency_s=10.0, open_write_timeout_s=30.0, clock=clock)


def test_nothing_pending_means_no_deadline(debouncer: Debouncer) -> None:
    assert debouncer.next_deadline() is None
    assert not debouncer.due()
    assert debouncer.take() == {}


def test_many_writes_to_one_file_are_one_path_released_after_the_quiet_period(
    debouncer: Debouncer, clock: FakeClock
) -> None:
    debouncer.add(RawEvent("created", "/r/a.jpg"))
    for _ in range(50):  # a file written in 50 chunks
        clock.advance(0.01)
        debouncer.add(RawEvent("modified", "/r/a.jpg"))
    debouncer.add(RawEvent("closed", "/r/a.jpg"))
    assert debouncer.pending == 1
    clock.advance(0.9)
    assert not debouncer.due()
    assert debouncer.take() == {}
    clock.advance(0.1)
    assert debouncer.due()
    assert debouncer.take() == {"/r/a.jpg": False}
    assert debouncer.pending == 0


def test_a_storm_that_never_pauses_is_released_at_the_latency_cap(debouncer: Debouncer, clock: FakeClock) -> None:
    released: list[dict[str, bool]] = []
    for i in range(250):  # one new file every 0.1 s for 25 s
        debouncer.add(RawEvent("created", f"/r/IMG_{i:04d}.jpg"))
        clock.advance(0.1)
        if debouncer.due():
            released.append(debouncer.take())
    clock.advance(1.0)
    released.append(debouncer.take())
    assert [len(batch) for batch in released] == [100, 100, 50]  # a few big batches, not 250 small ones
    assert sum(len(b) for b in released) == 250


def test_deadline_is_the_earlier_of_quiet_and_cap(debouncer: Debouncer, clock: FakeClock) -> None:
    debouncer.add(RawEvent("created", "/r/a.jpg"))
    assert debouncer.next_deadline() == pytest.approx(clock.now + 1.0)
    clock.advance(9.5)
    debouncer.add(RawEvent("created", "/r/b.jpg"))
    assert debouncer.next_deadline() == pytest.approx(clock.now + 0.5)  # the cap (10 s after the first)


def test_moves_mark_both_ends_and_remember_the_source(debouncer: Debouncer, clock: FakeClock) -> None:
    debouncer.add(RawEvent("moved", "/r/old", dest="/r/new", is_dir=True))
    debouncer.add(RawEvent("moved", "/r/a.jpg", dest="/r/b.jpg"))
    clock.advance(1.0)
    assert debouncer.take() == {"/r/old": True, "/r/new": True, "/r/a.jpg": False, "/r/b.jpg": False}
    assert debouncer.moved_from("/r/b.jpg") == "/r/a.jpg"
    debouncer.forget_moves(["/r/b.jpg"])
    assert debouncer.moved_from("/r/b.jpg") is None


def test_held_paths_come_back_when_due(debouncer: Debouncer, clock: FakeClock) -> None:
    debouncer.hold({"/r/a.jpg": False}, delay_s=2.0)
    assert debouncer.pending == 1
    assert debouncer.next_deadline() == pytest.approx(clock.now + 2.0)
    clock.advance(1.9)
    assert debouncer.take() == {}
    clock.advance(0.1)
    assert debouncer.take() == {"/r/a.jpg": False}


def test_a_new_event_supersedes_a_hold(debouncer: Debouncer, clock: FakeClock) -> None:
    debouncer.hold({"/r/a.jpg": False}, delay_s=5.0)
    debouncer.add(RawEvent("modified", "/r/a.jpg"))
    clock.advance(1.0)
    assert debouncer.take() == {"/r/a.jpg": False}
    assert debouncer.pending == 0


def test_open_for_writing_until_closed_or_timeout(debouncer: Debouncer, clock: FakeClock) -> None:
    debouncer.add(RawEvent("modified", "/r/a.jpg", expects_close=True))
    assert debouncer.is_writing("/r/a.jpg")
    debouncer.add(RawEvent("closed", "/r/a.jpg"))
    assert not debouncer.is_writing("/r/a.jpg")

    debouncer.add(RawEvent("modified", "/r/b.jpg", expects_close=True))
    clock.advance(29.0)
    assert debouncer.is_writing("/r/b.jpg")
    clock.advance(1.0)
    assert not debouncer.is_writing("/r/b.jpg")  # some programs never close; do not wait forever


def test_modified_without_close_reports_is_never_open(debouncer: Debouncer) -> None:
    debouncer.add(RawEvent("modified", "/r/a.jpg", expects_close=False))  # polling: no closes to wait for
    assert not debouncer.is_writing("/r/a.jpg")


def test_a_rename_carries_the_open_state(debouncer: Debouncer) -> None:
    debouncer.add(RawEvent("modified", "/r/a.part", expects_close=True))
    debouncer.add(RawEvent("moved", "/r/a.part", dest="/r/a.jpg"))
    assert debouncer.is_writing("/r/a.jpg")
    assert not debouncer.is_writing("/r/a.part")
    debouncer.add(RawEvent("deleted", "/r/a.jpg"))
    assert not debouncer.is_writing("/r/a.jpg")


def test_requests_are_folders_released_like_events(debouncer: Debouncer, clock: FakeClock) -> None:
    debouncer.request(["/r"])
    clock.advance(1.0)
    assert debouncer.take() == {"/r": True}


def test_under() -> None:
    assert under("/r/a/b.jpg", "/r/a")
    assert under("/r/a", "/r/a")
    assert not under("/r/ab.jpg", "/r/a")
