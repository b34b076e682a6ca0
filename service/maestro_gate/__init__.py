"""MAESTRO Gate: a policy decision point for multi-agent AI systems."""

__version__ = "0.1.0"
