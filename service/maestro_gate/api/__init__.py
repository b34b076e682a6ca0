"""The FastAPI edge: app factory, routers, and the one error handler."""
