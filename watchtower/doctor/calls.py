"""How the doctor reads botocore's errors: denied, not found, and why in one short line."""

from __future__ import annotations

from botocore.exceptions import ClientError

DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError"}


def code(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def why(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code')}: {' '.join(str(error.get('Message', '')).split())[:160]}"
    return type(exc).__name__  # botocore's own messages may quote a whole HTML error page
