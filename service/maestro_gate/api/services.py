"""How a route reaches the services it needs: `services_of(request)`, never the whole Gate.

`runtime.Services` holds narrow services (deciding, reading the audit log, events, controls,
approvals, authentication, reloads, readiness); the app's lifespan puts them on `app.state`.
A new route takes what it uses:

    services = services_of(request)
    response = await services.decisions.decide(parsed, caller, received=received)
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from maestro_gate.runtime import Services


def services_of(connection: HTTPConnection) -> Services:
    """The services of the app serving `connection`."""
    services: Services = connection.app.state.services
    return services
