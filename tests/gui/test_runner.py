"""The async runner: results on the GUI thread, real cancellation, stale answers dropped."""

from __future__ import annotations

import asyncio
import threading

import pytest
from PySide6.QtCore import QThread
from PySide6.QtWidgets import QApplication

from xtwizard.ui.runner import AsyncRunner


@pytest.fixture
def runner(qtbot):
    r = AsyncRunner()
    yield r
    r.shutdown()


def test_result_arrives_on_the_gui_thread(qtbot, runner):
    got = []

    async def work():
        got.append(("worker", threading.current_thread().name))
        return 42

    runner.submit(work, on_done=lambda v: got.append(("done", v, QThread.currentThread() is
                                                       QApplication.instance().thread())))
    qtbot.waitUntil(lambda: len(got) == 2, timeout=5000)
    assert got[0] == ("worker", "xtwizard-async")
    assert got[1] == ("done", 42, True)


def test_errors_go_to_on_error(qtbot, runner):
    errors = []

    async def boom():
        raise ValueError("no such tenant")

    runner.submit(boom, on_error=errors.append)
    qtbot.waitUntil(lambda: bool(errors), timeout=5000)
    assert isinstance(errors[0], ValueError)


def test_cancel_really_cancels_the_coroutine(qtbot, runner):
    started, cancelled = threading.Event(), threading.Event()
    done = []

    async def slow():
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    op = runner.submit(slow, on_done=done.append, on_error=done.append)
    assert started.wait(5)
    op.cancel()
    assert cancelled.wait(5)
    qtbot.wait(50)
    assert done == []


def test_a_newer_request_with_the_same_key_replaces_the_stale_one(qtbot, runner):
    release = asyncio.Event()
    results = []

    async def first():
        await release.wait()
        return "stale"

    async def second():
        return "fresh"

    runner.submit(first, on_done=results.append, key="prereqs")
    runner.submit(second, on_done=results.append, key="prereqs")
    runner.loop.call_soon_threadsafe(release.set)
    qtbot.waitUntil(lambda: bool(results), timeout=5000)
    qtbot.wait(50)
    assert results == ["fresh"]
