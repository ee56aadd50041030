"""Language-model backends. Heavy libraries load only when a backend is named."""

from __future__ import annotations

from importlib import import_module

from openbook.backends.base import Backend, PromptTemplate
from openbook.errors import ConfigError

_BACKENDS = {
    "llama.cpp": "openbook.backends.llama_cpp:LlamaCppBackend",
    "transformers": "openbook.backends.transformers_backend:TransformersBackend",
    "transformers-layered": "openbook.backends.layered:LayeredBackend",
}


def load_backend(name: str, model: str, **options: object) -> Backend:
    if name not in _BACKENDS:
        raise ConfigError(f"unknown backend {name!r}; choose from {', '.join(_BACKENDS)}")
    module_name, class_name = _BACKENDS[name].split(":")
    return getattr(import_module(module_name), class_name)(model, **options)


__all__ = ["Backend", "PromptTemplate", "load_backend"]
