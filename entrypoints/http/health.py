"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Response, get
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from entrypoints.http.services import ServicesDependency


class HealthController(Controller):
    path = "/health"
    tags = ["health"]

    @get("/", operation_id="health", summary="Liveness: the process is up")
    async def health(self) -> dict[str, str]:
        return {"status": "ok"}

    @get("/ready", operation_id="readiness", summary="Readiness: the store answers")
    async def ready(self, services: ServicesDependency) -> Response[dict[str, Any]]:
        components = await services.store.health()
        ready = all(components.values())
        body = {
            "status": "ready" if ready else "unavailable",
            "components": {name: "up" if up else "down" for name, up in components.items()},
        }
        return Response(body, status_code=HTTP_200_OK if ready else HTTP_503_SERVICE_UNAVAILABLE)
