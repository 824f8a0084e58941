"""RunPod's GraphQL schema as rpdeploy knows it: ``schema.graphql`` next to this module.

The SDL is generated from RunPod's own artifacts by ``scripts/runpod_schema.py`` (its header
names each source and commit). The emulator serves exactly this schema, and the contract
test validates every operation in ``graphql_ops`` against it, so a misspelt field or a
wrong input type fails CI instead of failing on RunPod.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from graphql import GraphQLSchema


def sdl() -> str:
    """The SDL text, as committed."""
    return resources.files("rpdeploy.runpod").joinpath("schema.graphql").read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def schema() -> GraphQLSchema:
    """The schema, built once (graphql-core is imported only here)."""
    from graphql import build_schema

    return build_schema(sdl())
