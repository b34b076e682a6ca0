"""Policy authoring tools: `policy check`, `policy build`, `policy sign` and `policy test`."""
