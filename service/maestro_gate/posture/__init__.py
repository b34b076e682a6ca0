"""The Threat Mapper: MAESTRO's practical steps answered from the registry, the enforced bundle
and the decision log.

Each report module (`topology`, `permissions`, `classification`, `blast`) is a pure function of
a `Registry` (registry.py), the decision records of a `Window` (window.py) and, where the report
asks the policy, a `Prober` (probe.py) over any `core.ports.PolicyEngine`. `sources.py` is the
one module that opens bundles, engines and audit logs; the CLI and the HTTP routes call it.
Nothing here writes to the audit log.
"""
