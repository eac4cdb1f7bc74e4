"""The base of every type that appears in a gpupool CRD or in the sizing engine.

Fields are snake_case in Python and camelCase on the wire, as the Kubernetes API conventions ask.
Models are frozen so that a plan or a spec can be hashed, compared and shared without copies.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class ApiModel(BaseModel):
    """A pydantic model with camelCase aliases, no unknown fields, and immutable instances."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )

    def to_wire(self) -> dict[str, object]:
        """The object as it appears in Kubernetes: camelCase keys, unset optionals omitted."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")
