"""AuditLog adapters: `sqlite` (the embedded default) and `postgres`."""
