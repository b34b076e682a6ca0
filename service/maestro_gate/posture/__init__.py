"""The Threat Mapper: MAESTRO's practical steps answered from the registry, the enforced bundle
and the decision log.

Each report module is a pure function of a `Registry` (registry.py), the decision records of a
`Window` (window.py) and, where the report asks the policy, a `Prober` (probe.py) over any
`core.ports.PolicyEngine`: `topology`, `permissions`, `classification`, `orchestrator` (with the
catalog's STRIDE crosswalk and the bundle's coverage), `blast`, `traffic` (coverage joined with
the window) and `replay` (recorded decisions on a candidate engine). `reports.py` wraps each in
its envelope, `tables.py` renders it. `sources.py` is the one module that opens bundles,
engines, the catalog and audit logs; the CLI and the HTTP routes call it. Nothing here writes
to the audit log.
"""
