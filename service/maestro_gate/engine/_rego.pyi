"""Type stubs for the C extension engine/_rego.c."""

def bind(
    string: int,
    object_item: int,
    object: int,
    array: int,
    boolean: int,
    integer: int,
    real: int,
    null: int,
    new_input: int,
    free_input: int,
    set_input: int,
    bundle_query_entrypoint: int,
) -> None: ...
def evaluate(
    interpreter: int, bundle: int, entrypoint: bytes, value: object
) -> tuple[int, str | None]: ...
