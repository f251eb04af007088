"""Data sources for peftlab: builtin offline datasets, local files and hub datasets."""

from __future__ import annotations

from peftlab.data.instructions import InstructionData, load_instruction_data
from peftlab.data.sources import (
    ClassificationData,
    DataSourceError,
    TextData,
    describe_builtin_sources,
    load_classification_data,
    load_text_data,
)

__all__ = [
    "ClassificationData",
    "DataSourceError",
    "InstructionData",
    "TextData",
    "describe_builtin_sources",
    "load_classification_data",
    "load_instruction_data",
    "load_text_data",
]
