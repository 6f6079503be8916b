from __future__ import annotations

import dramatiq
import pytest


@pytest.fixture
def delivery_worker(settings):
    """A Dramatiq worker (4 threads) on the alerts queue of the test Redis."""
    settings.HISTORY_RECLAIM_EVERY = 0  # no reclaimer thread in tests
    worker = dramatiq.Worker(
        dramatiq.get_broker(), queues={"alerts"}, worker_threads=4, worker_timeout=100
    )
    worker.start()
    yield worker
    worker.stop()
