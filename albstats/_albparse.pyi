# Types of the compiled tokenizer (albstats/_albparse.c), for type checkers; see that file for the contract.
from typing import Any

_Bytes = bytes | bytearray | memoryview

#: Validator, kind and type names in the order of their codes (the positions are the codes).
VALIDATORS: tuple[str, ...]
KINDS: tuple[str, ...]
TYPES: tuple[str, ...]

def parse_block(
    data: _Bytes | list[bytes],
    tokens: list[tuple[int, int]],
    min_tokens: int,
    columns: list[tuple[int, int, int]],
) -> tuple[_Bytes, list[tuple[Any, ...]], _Bytes, list[int]]: ...
def valid(code: int, value: _Bytes, /) -> bool: ...
