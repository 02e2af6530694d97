"""Control-side events in the node's log (DESIGN section 8): start and stop, config
applied or refused, real up or down. They go through the same logger thread as the
workers' connection log (`dplb._core.Logger.event`), so the node has one JSON-lines file.

Two ways in: `log_event(logger, "real_down", vip=..., real=...)` for code that knows
its event, and `LoggerHandler`, a `logging.Handler` that carries the records of Python
loggers (`dplb.reconciler`, `dplb.api`, ...) into the file. A record that names its
event (`log.info("...", extra={"event": "config_applied", "fields": {...}})`) becomes
that event; any other becomes `{"event": "message", "logger": ..., "level": ...,
"message": ...}`."""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol


class EventSink(Protocol):
    """What the C++ logger offers the control side (`dplb._core.Logger`)."""

    def event(self, name: str, fields_json: str = "") -> bool: ...


def log_event(sink: EventSink, name: str, **fields: Any) -> bool:
    """Queues one event line; False when the logger's queue is full (it is counted in
    dplb_logger_dropped_total{reason="queue_full"}). Never waits for the disk."""
    return sink.event(name, json.dumps(fields, default=str) if fields else "")


class LoggerHandler(logging.Handler):
    """A logging handler that writes records as events of the node's log."""

    def __init__(self, sink: EventSink, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        try:
            name = getattr(record, "event", None)
            fields: dict[str, Any] = dict(getattr(record, "fields", None) or {})
            if name is None:
                name = "message"
                fields.update(
                    logger=record.name,
                    level=record.levelname.lower(),
                    message=record.getMessage(),
                )
            log_event(self.sink, str(name), **fields)
        except Exception:  # a log line must never break the code that logs it
            self.handleError(record)
