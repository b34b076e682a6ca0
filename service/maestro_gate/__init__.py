"""MAESTRO Gate: a policy decision point for multi-agent AI systems."""

# First, before anything loads rego-cpp: its fixes interpose symbols (see engine/patches.py).
from maestro_gate.engine import patches as _engine_patches  # noqa: F401

__version__ = "0.1.0"
