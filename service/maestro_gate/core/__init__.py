"""The domain, in three packages over a small kernel.

- `decision`: requests, the decision point and its steps, the policy result, approvals, controls,
  budgets, admission, the ports the decision consumes;
- `ledger`: audit record bodies, the hash chain, the Merkle tree, checkpoints, verification;
- `catalog`: the MAESTRO threat catalog, the bundle's annotations and coverage;
- the kernel every package shares: `errors` (one error tree with stable codes) and `clock`.

Pure by contract (import-linter enforces it): stdlib, pydantic, jsonschema and structlog only.
"""
