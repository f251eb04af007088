"""Library log lines that say nothing a peftlab user can act on, filtered once at import.

Kept in a leaf module that imports only `logging`, so `import peftlab` stays instant.
"""

from __future__ import annotations

import logging

# bitsandbytes logs this once at import on AVX-512-BF16 CPUs when the optional `kernels` package is
# missing. It concerns only the repacked CPU inference path, which peftlab keeps off for every 4-bit
# model (`peftlab.methods.bnb_cpu`), so the kernel it failed to load would never run.
_BNB_CPU_KERNEL_NOTICE = "Failed to load CPU gemm_4bit_forward"


class _DropBnbCpuKernelNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_BNB_CPU_KERNEL_NOTICE)


def install() -> None:
    """Attach the filters to the libraries' loggers (before the libraries are imported; idempotent).

    `logging.getLogger` creates a logger on first use, and the filters stay when the library's
    own module later asks for the same logger by name.
    """
    logger = logging.getLogger("bitsandbytes.backends.cpu.ops")
    if not any(isinstance(f, _DropBnbCpuKernelNotice) for f in logger.filters):
        logger.addFilter(_DropBnbCpuKernelNotice())
