"""WireModel: the base of every model a tool returns; it sends only what means something.

A field that holds its default, ``None`` or an empty string, list or mapping is left out
of every serialization (``model_dump``, ``model_dump_json`` and the tool results built
from them), so a result carries only the fields that tell the reader something. Required
fields are always sent. The JSON schema is unchanged: a left-out field is one with a
default, which the schema already marks as optional. A field may set its own
``exclude_if`` (for example to keep a ``0`` or to leave out a small value); it is kept.

Models that reproduce another server's shapes field for field (the compat toolset) set
``compact_wire = False`` and are sent whole.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel


def _is_empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str | list | dict | tuple | set | frozenset):
        return len(value) == 0
    if isinstance(value, BaseModel):
        return not value.model_dump()
    return False


class _LeaveOut:
    """``exclude_if`` for one field: leave out empty values and the field's default."""

    def __init__(self, default: Any) -> None:
        self.default = default

    def __call__(self, value: Any) -> bool:
        if _is_empty(value):
            return True
        return type(value) is type(self.default) and bool(value == self.default)


class WireModel(BaseModel):
    """Base of the wire models: unset, empty and default-valued fields are not sent."""

    compact_wire: ClassVar[bool] = True

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        changed = False
        for field in cls.model_fields.values():
            ours = isinstance(field.exclude_if, _LeaveOut)
            if not cls.compact_wire:
                if ours:
                    field.exclude_if = None
                    changed = True
                continue
            if field.is_required() or (field.exclude_if is not None and not ours):
                continue
            if not ours:
                field.exclude_if = _LeaveOut(field.get_default(call_default_factory=True))
                changed = True
        if changed:
            cls.model_rebuild(force=True)
