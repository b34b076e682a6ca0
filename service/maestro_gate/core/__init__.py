"""The domain: requests, decisions, the decision point, audit chain math and the catalog.

Pure by contract (import-linter enforces it): stdlib, pydantic and structlog only.
"""
