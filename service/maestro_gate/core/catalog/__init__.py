"""The MAESTRO threat catalog, the bundle's METADATA annotations, and what the bundle covers."""
