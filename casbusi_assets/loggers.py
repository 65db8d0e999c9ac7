"""A compact console logger: one short line per step event and per progress message.

Dagster's default console logger prints run ids and full event payloads on every line; for a
terminal run of `casbusi run-batch` the user wants "which step, how far, what went wrong".
"""

from __future__ import annotations

import logging
import sys

import dagster as dg

_EVENT_WORDS = {
    "STEP_START": "started",
    "STEP_SUCCESS": "done",
    "STEP_FAILURE": "FAILED",
    "STEP_SKIPPED": "skipped",
}


class _CompactFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        meta = getattr(record, "dagster_meta", None) or {}
        step = meta.get("step_key") or "run"
        event = meta.get("dagster_event")
        stamp = self.formatTime(record, "%H:%M:%S")
        if event is not None:
            word = _EVENT_WORDS.get(event.event_type_value)
            if word is None:
                return ""
            return f"{stamp} {step:<18} {word}"
        message = meta.get("orig_message") or record.getMessage()
        return f"{stamp} {step:<18} {message}"


class _StepEventsAndMessages(logging.Filter):
    """Step events arrive at DEBUG level; keep those we name, and messages at `level` or above."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        event = (getattr(record, "dagster_meta", None) or {}).get("dagster_event")
        if event is not None:
            return event.event_type_value in _EVENT_WORDS
        return record.levelno >= self.level


@dg.logger(
    {"log_level": dg.Field(str, is_required=False, default_value="INFO")},
    description="Compact one-line-per-event console output.",
)
def compact_console_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    level = logging.getLevelName(init_context.logger_config["log_level"].upper())
    logger = logging.getLogger("casbusi")
    logger.setLevel(logging.DEBUG)
    logger.handlers.clear()
    logger.propagate = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_CompactFormatter())
    handler.addFilter(_StepEventsAndMessages(level))
    logger.addHandler(handler)
    return logger
