"""What Córtex tells its operator: each request's record, the access log, metrics and logging."""

from .record import RequestRecord, current, log_access, request_id

__all__ = ["RequestRecord", "current", "log_access", "request_id"]
