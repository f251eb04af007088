"""Task definitions: how examples become batches, and how a model is scored on them."""
