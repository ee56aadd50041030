"""The offline model store: named models resolve to verified files in a cache folder."""

from openbook.models.registry import MODELS, ModelSpec
from openbook.models.store import ModelNotAvailable, ModelStore, local_model_location, resolve_model

__all__ = ["MODELS", "ModelNotAvailable", "ModelSpec", "ModelStore", "local_model_location", "resolve_model"]
