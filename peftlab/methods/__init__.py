"""Registered fine-tuning methods. Importing this package registers every built-in method.

Every module of this package is imported here, once: a module that calls `register` adds a
method, the others are helpers (targets, fit, capability, ...). Adding a method adds a file and
edits none. A method of one's own, outside peftlab, registers the same way from an entry point
(`peftlab.methods`) or an experiment's `include:` folder (peftlab/plugins.py, docs/plugins.md).
"""

import importlib
import pkgutil

from peftlab.methods.registry import REGISTRY, Method, ModelContext, get_method, method_names, register

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["REGISTRY", "Method", "ModelContext", "get_method", "method_names", "register"]
