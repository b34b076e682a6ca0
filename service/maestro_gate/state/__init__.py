"""StateSource adapters: per-agent rate and budget counters and per-session recent actions."""
