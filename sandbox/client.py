"""A client for the sandbox's own control endpoints (``/_sandbox/...``), for tests and benchmarks."""

import json
import urllib.request
from typing import Any


def control_sandbox(url: str, name: str, body: dict[str, Any] | None = None) -> Any:
    """GET ``/_sandbox/<name>``, or POST `body` to it as JSON when one is given."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 -- the sandbox's own local http address
        f"{url}/_sandbox/{name}", data=data, method="POST" if data is not None else "GET"
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return json.loads(response.read() or b"null")
