"""Settings, read from `MAESTRO_GATE_*` environment variables (or an injected mapping).

`Settings.from_env(environ)` is the only place the environment is read; nothing reads it at import.
The README's configuration table is generated from these fields (`maestro-gate config`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PREFIX = "MAESTRO_GATE_"


class Settings(BaseSettings):
    """Every setting of the service; defaults are the embedded profile."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore", frozen=True)

    profile: Literal["embedded", "production"] = Field(
        "embedded", description="`production` refuses development credentials and defaults."
    )
    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8080, ge=1, le=65535, description="Port to listen on.")
    engine: Literal["embedded", "opa"] = Field("embedded", description="Policy engine.")
    engine_workers: int = Field(2, ge=1, le=64, description="Embedded engine worker threads.")
    opa_url: str = Field("http://127.0.0.1:8181", description="OPA server base URL (engine=opa).")
    opa_bundle: str = Field(
        "",
        description="OPA bundle whose revision decisions record (engine=opa; empty: the only one).",
    )
    decision_timeout_ms: int = Field(
        250, ge=1, le=60_000, description="Evaluation deadline; past it the answer is deny."
    )
    bundle_dir: Path = Field(Path("policies"), description="Policy bundle directory.")
    registry_file: Path | None = Field(
        None, description="Deployer's registry JSON; replaces `data.maestro.registry`."
    )
    bundle_public_key_file: Path | None = Field(
        None, description="PEM public key; when set, only bundles signed with it load."
    )
    audit_dsn: str = Field(
        "sqlite:///var/audit.db", description="`sqlite:///PATH` or `postgresql://…`."
    )
    audit_synchronous: Literal["FULL", "NORMAL", "EXTRA"] = Field(
        "FULL", description="SQLite durability (`FULL` fsyncs each group commit)."
    )
    audit_mask: list[str] = Field(
        default_factory=list,
        description="JSON pointers into the input to mask in audit records (JSON list).",
    )
    checkpoint_key_file: Path = Field(
        Path("var/checkpoint.key"), description="Ed25519 checkpoint signing key (PEM)."
    )
    checkpoint_origin: str = Field(
        "maestro-gate.local/audit", description="Origin line of signed checkpoints."
    )
    checkpoint_interval_s: int = Field(
        60, ge=0, description="Seconds between scheduled checkpoints (0: on demand only)."
    )
    mode: Literal["enforce", "shadow"] = Field("enforce", description="Global enforcement mode.")
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Largest accepted request body (413 above)."
    )
    max_depth: int = Field(32, ge=4, le=256, description="Deepest accepted JSON nesting.")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Log level."
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Settings from a mapping shaped like `os.environ`."""
        values = {
            key[len(PREFIX) :].lower(): value
            for key, value in environ.items()
            if key.startswith(PREFIX)
        }
        return cls.model_validate(_decode_lists(values))


def _decode_lists(values: dict[str, str]) -> dict[str, object]:
    decoded: dict[str, object] = dict(values)
    for name, field in Settings.model_fields.items():
        if name in values and field.annotation == list[str]:
            try:
                decoded[name] = json.loads(values[name])
            except ValueError:
                decoded[name] = [v for v in values[name].split(",") if v]
    return decoded
