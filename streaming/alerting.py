"""The stream worker's side of alerts: building the engine, and the symbols
its rules need streamed. Evaluation itself is `alerts.engine.AlertEngine`."""

from __future__ import annotations

import logging

logger = logging.getLogger("streaming.worker")


def alert_engine_build():
    """The alert engine with every active rule loaded (database access), or
    None when the alerts app has no engine. Events reach it only for the
    worker's own instruments, so each rule is evaluated by one shard."""
    try:
        from alerts.engine import AlertEngine
    except ImportError:
        logger.info("alerts.engine is not available: alerts are not evaluated")
        return None
    engine = AlertEngine(symbols=None)
    engine.reload()
    return engine


def alert_symbols(engine) -> set[str]:
    """Symbols with active alert rules: the worker streams them too."""
    if engine is None:
        return set()
    return {rule.symbol for rule in list(engine.rules.values())}
