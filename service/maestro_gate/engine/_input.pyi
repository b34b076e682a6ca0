"""Type stubs for the C extension engine/_input.c."""

def bind(
    string: int,
    object_item: int,
    object: int,
    array: int,
    boolean: int,
    integer: int,
    real: int,
    null: int,
) -> None: ...
def build(handle: int, value: object) -> None: ...
