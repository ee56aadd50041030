"""The offline model store: named models resolve to verified files in a cache folder."""

from openbook.models.registry import MODELS, ModelSpec
from openbook.models.store import ModelStore, resolve_model

__all__ = ["MODELS", "ModelSpec", "ModelStore", "resolve_model"]
