"""Config flags that may come from the command line: ``monai.bundle run --resume true`` passes the text "true"."""
from __future__ import annotations


def as_bool(value, name: str) -> bool:
    """``True``/``False``, or the text "true"/"false" in any case; anything else is an error naming the flag."""
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value
