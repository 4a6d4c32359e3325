"""The one error type every wire decoder raises."""


class CodecError(ValueError):
    """Bytes that do not decode: says what was wrong and at which offset."""

    def __init__(self, what: str, offset: int = 0):
        super().__init__(f"{what} (at offset {offset})")
        self.what = what
        self.offset = offset
