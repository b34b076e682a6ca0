"""PolicyEngine adapters: `embedded` (regopy in process) and `opa` (an OPA server over REST)."""
