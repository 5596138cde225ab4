"""What pages and request bodies share: the static folder, strict page headers, and a safe JSON body base."""

from __future__ import annotations

from importlib import resources

from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, field_validator

STATIC = resources.files("veilwatch.server") / "static"
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; media-src 'self'; "
    "connect-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


class RequestBody(BaseModel):
    """A JSON request body: no NaN or infinities, and only text that is valid Unicode (no lone surrogates)."""

    model_config = ConfigDict(allow_inf_nan=False)

    @field_validator("*")
    @classmethod
    def _unicode_text(cls, value: object) -> object:
        # JSON may spell a lone surrogate ("\ud800"); it cannot be hashed, stored or logged as UTF-8.
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("not valid Unicode text (a lone surrogate)") from None
        return value


def page(name: str) -> HTMLResponse:
    """A static HTML page with a strict content security policy."""
    return HTMLResponse((STATIC / name).read_text(encoding="utf-8"), headers=PAGE_HEADERS)
