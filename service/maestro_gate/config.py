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
    engine: Literal["embedded", "opa", "opa-inprocess"] = Field(
        "embedded",
        description="Policy engine: `embedded` (rego-cpp), `opa` (an OPA server over REST) or"
        " `opa-inprocess` (OPA's own evaluator in this process).",
    )
    engine_workers: int = Field(
        2, ge=1, le=64, description="Worker threads of the embedded and opa-inprocess engines."
    )
    opa_url: str = Field("http://127.0.0.1:8181", description="OPA server base URL (engine=opa).")
    opa_bundle: str = Field(
        "",
        description="OPA bundle whose revision decisions record (engine=opa; empty: the only one).",
    )
    opa_token_file: Path | None = Field(
        None,
        description="File holding the bearer token sent to OPA run with `--authentication=token`"
        " (engine=opa); read at start and again on every reload.",
    )
    caller_evaluations: int = Field(
        16,
        ge=1,
        le=1024,
        description="Evaluations one caller may have running at once; while one of them runs"
        " past its deadline the caller may start no other (429 `caller_overloaded`).",
    )
    caller_work_rate: int = Field(
        5000,
        ge=0,
        description="Work units a second each caller may spend on `/v1/decide` (one per body,"
        " plus its weight, plus one per KiB); past its budget a caller gets 429"
        " `caller_overloaded` before its body is read. 0 turns the budget off.",
    )
    caller_work_burst: int = Field(
        10_000,
        ge=1,
        description="Work units a caller may save up and spend at once.",
    )
    max_request_weight: int = Field(
        640,
        ge=1,
        description="Heaviest request evaluated (list items plus the delegation chain's length"
        " squared); heavier ones get 400 `request_too_complex`.",
    )
    decision_timeout_ms: int = Field(
        250, ge=1, le=60_000, description="Evaluation deadline; past it the answer is deny."
    )
    bundle_dir: Path = Field(
        Path("policies"), description="Policy bundle: a directory or an OPA `.tar.gz`."
    )
    registry_file: Path | None = Field(
        None, description="Deployer's registry JSON; replaces `data.maestro.registry`."
    )
    bundle_public_key_file: Path | None = Field(
        None, description="PEM public key; when set, only bundles signed with it load."
    )
    bundle_signature_scope: str | None = Field(
        None, description="The `scope` claim signed bundles must carry (unset: none)."
    )
    bundle_watch_s: float = Field(
        0,
        ge=0,
        description="Seconds between polls of the bundle for changes to hot-reload (0: off).",
    )
    catalog_dir: Path | None = Field(
        Path("catalog"),
        description="MAESTRO catalog checked against cited threat ids (a missing dir: unchecked).",
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
    audit_state: bool = Field(
        True,
        description="Record the state the policy saw in each decision record (schema 2, for "
        "`posture replay`); false: schema-1 records, smaller, replayed approximately.",
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
    mode: Literal["enforce", "shadow"] = Field(
        "enforce", description="Initial global enforcement mode (a mode set by an admin persists)."
    )
    shadow_layers: list[str] = Field(
        default_factory=list,
        description="Initial layers whose reasons cannot block (JSON list of layer names).",
    )
    auth: Literal["required", "off"] = Field(
        "required", description="Caller authentication; `off` is refused by profile production."
    )
    api_keys_file: Path | None = Field(
        None, description="JSON file of hashed API keys (`maestro-gate auth add-key` writes it)."
    )
    dev_key_file: Path = Field(
        Path("var/dev-api-key"),
        description="Development key (all roles), made when the embedded profile has no others.",
    )
    jwks_file: Path | None = Field(
        None, description="JWKS JSON whose keys verify JWT bearer tokens (EdDSA, ES256, RS256)."
    )
    jwks_url: str | None = Field(
        None,
        description="URL of a JWKS (an OIDC provider's `jwks_uri`) whose keys verify JWT bearer"
        " tokens; instead of the file.",
    )
    jwks_timeout_s: float = Field(
        2.0, gt=0, le=60, description="Timeout of one fetch of the JWKS URL."
    )
    jwks_refresh_s: float = Field(
        300.0,
        ge=1,
        le=86_400,
        description="Seconds the keys fetched from the JWKS URL are used before a fetch again"
        " (a token with an unknown `kid` fetches at once, at most every 5 s; a failed fetch"
        " keeps the last good keys).",
    )
    jwt_issuer: str | None = Field(None, description="Required `iss` of JWT bearer tokens.")
    jwt_audience: str | None = Field(None, description="Required `aud` of JWT bearer tokens.")
    jwt_roles_claim: str = Field("roles", description="JWT claim listing the caller's roles.")
    jwt_subjects_claim: str = Field(
        "subjects", description="JWT claim listing the agent ids an agent token may ask for."
    )
    jwt_leeway_s: int = Field(30, ge=0, le=300, description="Clock skew allowed on `exp`/`nbf`.")
    credentials_refresh_s: float = Field(
        1.0,
        ge=0,
        le=3600,
        description="Seconds between checks of the API keys and JWKS files for changes, which"
        " take effect without a restart (0: at every request).",
    )
    approval_ttl_s: int = Field(
        3600, ge=1, description="Seconds an approval stays usable after the hitl decision."
    )
    redis_url: str | None = Field(
        None, description="`redis://…`: share rate, budget and session state between replicas."
    )
    redis_prefix: str = Field("maestro:", description="Prefix of every Redis key the gate uses.")
    rate_window_s: int = Field(
        60, ge=1, description="Sliding window of `state.agent.requests_in_window`."
    )
    budget_window_s: int = Field(
        3600, ge=1, description="Period over which `state.agent.budget_spent` accumulates."
    )
    session_recent: int = Field(
        20, ge=1, le=1000, description="Entries kept in `state.session.recent`."
    )
    session_ttl_s: int = Field(
        86_400, ge=60, description="Idle seconds before Redis forgets a session."
    )
    controls_refresh_s: float = Field(
        1.0,
        ge=0,
        description="Seconds between re-reads of mode, stops and pending approvals (0: off).",
    )
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
