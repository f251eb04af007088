"""peftlab: compare parameter-efficient fine-tuning methods under one training loop, with honest measurements."""

__version__ = "0.1.0"
