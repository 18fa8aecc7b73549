"""Application bootstrap: the log file, and uncaught errors from any thread end up in it."""

from __future__ import annotations

import logging
import threading

from xtwizard.ui.app import setup_logging


def test_log_file_receives_lines_and_uncaught_thread_errors(tmp_path):
    undo = setup_logging(tmp_path)
    try:
        logging.getLogger("xtwizard.test").info("hello from the wizard")

        def boom():
            raise RuntimeError("worker exploded")

        t = threading.Thread(target=boom, name="worker-1")
        t.start()
        t.join()
        for h in logging.getLogger().handlers:
            h.flush()
    finally:
        undo()
    text = (tmp_path / "xtwizard.log").read_text()
    assert "hello from the wizard" in text
    assert "uncaught exception in thread worker-1" in text and "worker exploded" in text
    assert (tmp_path / "crash.log").exists()
