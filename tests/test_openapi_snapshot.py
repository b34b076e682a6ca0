"""The HTTP contract: the served OpenAPI document equals the checked-in snapshot.

After an intended change to the API, regenerate the snapshot with
`.venv/bin/python -m tests.test_openapi_snapshot` and review the diff.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

SNAPSHOT = Path(__file__).parent / "snapshots" / "openapi.json"


def served(client: TestClient) -> dict[str, Any]:
    """The OpenAPI document the app serves."""
    response = client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def test_openapi_matches_the_snapshot(client: TestClient) -> None:
    """Paths, request and response schemas are exactly the published contract."""
    assert served(client) == json.loads(SNAPSHOT.read_text())


def test_request_kinds_are_published(client: TestClient) -> None:
    """The three request kinds and their discriminator are in the schema."""
    schemas = served(client)["components"]["schemas"]
    union = schemas["DecisionRequest"]
    assert union["discriminator"]["propertyName"] == "kind"
    assert set(union["discriminator"]["mapping"]) == {"agent_action", "data_movement", "delegation"}
    assert {"AgentAction", "DataMovement", "Delegation", "DecisionResponse"} <= set(schemas)


if __name__ == "__main__":
    import tempfile

    from tests.conftest import live_client, make_settings, write_bundle

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with live_client(make_settings(root, write_bundle(root / "bundle"))) as app_client:
            SNAPSHOT.write_text(json.dumps(served(app_client), indent=2, sort_keys=True) + "\n")
    print(f"wrote {SNAPSHOT}")
