"""Durable approvals and operator controls (mode, emergency stops), beside the audit log."""
