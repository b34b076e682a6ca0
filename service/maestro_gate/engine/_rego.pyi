"""Type stubs for the C extension engine/_rego.c."""

# bind(string, object_item, object, array, boolean, integer, real, null, new_input, free_input,
#      set_input, bundle_query_entrypoint, trusted): function addresses, the last one may be 0.
def bind(*addresses: int) -> None: ...
def evaluate(
    interpreter: int, bundle: int, entrypoint: bytes, value: object
) -> tuple[int, str | None]: ...
