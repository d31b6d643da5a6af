"""References into the OpenAPI document's components, shared by the modules that build its paths.

>>> json_content("Job")
{'application/json': {'schema': {'$ref': '#/components/schemas/Job'}}}
>>> error_responses("404", "429")["429"]
{'$ref': '#/components/responses/TooManyRequests'}
"""

from __future__ import annotations

from typing import Any


def json_content(name: str) -> dict[str, Any]:
    """A JSON body whose schema is the component ``name``."""
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}


def error_responses(*codes: str) -> dict[str, Any]:
    """The shared error response of each status code (429 has its own, with ``Retry-After``)."""
    return {
        code: {"$ref": f"#/components/responses/{'TooManyRequests' if code == '429' else 'Error'}"}
        for code in codes
    }
