"""Library log lines that say nothing a peftlab user can act on, filtered once at import.

Kept in a leaf module that imports only `logging`, so `import peftlab` stays instant.
"""

from __future__ import annotations

import logging

# bitsandbytes logs this once at import on AVX-512-BF16 CPUs when the optional `kernels` package is
# missing. It concerns only the repacked CPU inference path, which peftlab keeps off for every 4-bit
# model (`peftlab.methods.bnb_cpu`), so the kernel it failed to load would never run.
_BNB_CPU_KERNEL_NOTICE = "Failed to load CPU gemm_4bit_forward"


# With the optional `kernels` package installed (transformers >= 5.24 environments bring it), the same
# kernel lookup logs that it skipped a hub check because the hub is offline: equally moot, and on
# stderr it broke the one-line promise of every config error.
_KERNELS_OFFLINE_NOTICE = "Skipping publisher trust check"


class _DropBnbCpuKernelNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith((_BNB_CPU_KERNEL_NOTICE, _KERNELS_OFFLINE_NOTICE))


def install() -> None:
    """Attach the filters to the libraries' loggers (before the libraries are imported; idempotent).

    `logging.getLogger` creates a logger on first use, and the filters stay when the library's
    own module later asks for the same logger by name.
    """
    for name in ("bitsandbytes.backends.cpu.ops", "kernels._internals.hf_hub"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropBnbCpuKernelNotice) for f in logger.filters):
            logger.addFilter(_DropBnbCpuKernelNotice())
