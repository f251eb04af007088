"""The fine-tuning methods' runtime. Importing this package registers every declared method's hooks.

Each method is declared in peftlab/method_specs/ (torch-free) and names its runtime module there;
this package imports them all, so that `REGISTRY` is complete (a run finds one by `get_method`).
"""

import importlib

from peftlab.method_specs import all_method_specs
from peftlab.methods.registry import REGISTRY, Method, ModelContext, get_method, method_names, register

for _spec in all_method_specs():
    importlib.import_module(_spec.runtime)

__all__ = ["REGISTRY", "Method", "ModelContext", "get_method", "method_names", "register"]
