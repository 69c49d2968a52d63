"""neonize failures as EngineError, with ``retryable`` set from what whatsmeow said.

neonize raises one exception class per call (SendMessageError, PairPhoneError, ...) that
only carries whatsmeow's error text, so the classification reads that text. Transport
and timeout trouble is worth retrying; a refused recipient or request is not.
"""

from __future__ import annotations

from warest.app.engine import EngineError, NotConnected

# Lower-case fragments of whatsmeow / Go network errors.
_NOT_CONNECTED = ("not connected", "websocket not connected", "not logged in", "client not found")
_TIMEOUT = ("timed out", "timeout", "deadline exceeded")
_TRANSIENT = (
    "connection reset",
    "connection refused",
    "broken pipe",
    "eof",
    "no route to host",
    "network is unreachable",
    "i/o timeout",
    "server returned error 429",
    "server returned error 500",
    "server returned error 503",
    "rate-overlimit",
    "was interrupted by websocket disconnection",
)
_REFUSED_RECIPIENT = (
    "unknown server",
    "invalid jid",
    "not on whatsapp",
    "no devices found",
    "user not found",
)


def engine_error(error: BaseException, action: str) -> EngineError:
    """The EngineError for a failed ``action`` (e.g. "send", "pair")."""
    text = str(error) or type(error).__name__
    lowered = text.lower()
    if any(fragment in lowered for fragment in _NOT_CONNECTED):
        return NotConnected(f"{action} failed: {text}")
    if any(fragment in lowered for fragment in _TIMEOUT):
        return EngineError(f"{action} timed out: {text}", code="timeout", retryable=True)
    if any(fragment in lowered for fragment in _TRANSIENT):
        return EngineError(f"{action} failed: {text}", code="network", retryable=True)
    if any(fragment in lowered for fragment in _REFUSED_RECIPIENT):
        return EngineError(f"{action} failed: {text}", code="invalid_recipient", retryable=False)
    return EngineError(f"{action} failed: {text}", code=f"{action}_failed", retryable=False)
