"""Logging set-up: one JSON object per line (LOG_FORMAT=json) or plain text, each line with the request id.

The gateway sets `REQUEST_ID` for the duration of each request, so every line logged while serving it carries
the id (accepted from X-Request-ID or generated, and echoed back). Code never logs secrets; as a second guard the
formatters mask anything shaped like a PayGo token or key (`pgp_…`, `pgv_…`, `pga_…`).

aiohttp's own loggers are not ours to word, so their records pass `AiohttpRedactionFilter` on the way out: a
malformed request (which aiohttp logs with the offending raw header line, credentials included) is told by its
kind only, at INFO (a client's mistake, not our error); any other text has control characters escaped, credential
header values and session codes in paths masked.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TextIO

from aiohttp.http_exceptions import HttpProcessingError

REQUEST_ID: ContextVar[str | None] = ContextVar("paygo_request_id", default=None)

LOG_FORMATS = ("json", "text")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

_SECRET = re.compile(r"\b(pg[pva]_)[A-Za-z0-9_\-]{6,}")
_CREDENTIAL_HEADER = re.compile(r"(?i)\b(authorization|x-api-key|cookie|idempotency-key|stripe-signature)"
                                r"(\s*[:=]\s*)[^\s'\",]+(?:[ \t]+[^\s'\",]+)?")
_SESSION_PATH = re.compile(r"(/api/v1/sessions/)(?!end\b)[^/\s?\"']+")
_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def redact(text: str) -> str:
    return _SECRET.sub(r"\1[redacted]", text)


def redact_foreign(text: str) -> str:
    """A line from a library: control characters escaped, credential headers and session codes masked."""
    printable = "".join(char if char.isprintable() else f"\\x{ord(char):02x}" for char in text)
    return redact(_SESSION_PATH.sub(r"\1[redacted]", _CREDENTIAL_HEADER.sub(r"\1\2[redacted]", printable)))


class AiohttpRedactionFilter(logging.Filter):
    """Rewrites records of aiohttp's loggers so that no credential, session code or raw request line is written."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("aiohttp"):
            return True
        message = redact_foreign(record.getMessage())
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            if isinstance(error, HttpProcessingError):
                message = f"{message}: malformed request ({type(error).__name__}, {error.code})"
                record.levelno, record.levelname = logging.INFO, "INFO"
            else:
                detail = redact_foreign("".join(traceback.format_exception(error)))
                message = f"{message}\n{detail}"
            record.exc_info = None
            record.exc_text = None
        record.msg, record.args = message, ()
        return True


class RequestIdFilter(logging.Filter):
    """Puts the current request id (or None outside a request) on every record as `request_id`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """time, level, logger, message, request_id, then any `extra=` fields (method, route, status, duration_ms)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace(
                "+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            "request_id": getattr(record, "request_id", None),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def log_handler(log_format: str, stream: TextIO | None = None) -> logging.Handler:
    """A stream handler (stderr by default) with the formatter of `log_format` and the request-id filter."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())
    handler.addFilter(AiohttpRedactionFilter())
    return handler


def configure_logging(log_format: str, level: str) -> None:
    """Replace the root logger's handlers with one of ours. APScheduler logs every run at INFO; our own
    job wrapper records runs in `job_runs` and logs failures, so its chatter is kept to warnings."""
    logging.basicConfig(level=level, handlers=[log_handler(log_format)], force=True)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
