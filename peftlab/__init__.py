"""peftlab: compare parameter-efficient fine-tuning methods under one training loop, with honest measurements."""

from peftlab import library_noise

__version__ = "0.1.0"

library_noise.install()
