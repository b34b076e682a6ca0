"""Caller authentication: hashed API keys, JWT bearer tokens verified against a JWKS file."""
