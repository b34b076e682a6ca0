"""Deciding: a request in, a policy decision out, recorded before it is answered."""
