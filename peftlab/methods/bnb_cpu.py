"""bitsandbytes' CPU weight repacking, kept off for every model peftlab loads in 4-bit.

Why this exists (bitsandbytes 0.50.2, `bitsandbytes/nn/modules.py`, `Linear4bit.forward`): on a
CPU that reports AVX-512-BF16, the first forward pass in eval mode whose input needs no grad
repacks the module's 4-bit weight *in place* into a layout for a bf16 inference kernel
(`_convert_weight_packed_for_cpu`). Nothing converts it back when the module trains again, so
the first training step after an evaluation fails ("a view of a leaf Variable that requires
grad is being used in an in-place operation"): QLoRA died in the main job on Intel Xeons while
AMD EPYCs without that instruction set never took the path.

Keeping the repacking off, on every CPU, does more than avoid the crash: the packed path
computes evaluation matmuls in bf16 while the unpacked one dequantises to the compute dtype,
so with the repacking on the same run would score differently depending on the machine's CPU.
Off, every CPU takes the same numerical path. The switch is the module's own attribute
(`support_avx512bf16_for_cpu`), read on each forward; weights already packed are unpacked
with bitsandbytes' own inverse (which is lossy: it re-quantises absmax from bf16, one more reason to never
pack). The import-time notice about the packed path's optional kernel is dropped in `peftlab.library_noise`.
"""

from __future__ import annotations

from typing import Any


def keep_4bit_weights_unpacked(model: Any) -> int:
    """Turn bitsandbytes' CPU repacking off in every 4-bit linear layer of `model`; unpack any already packed.

    Returns the number of 4-bit layers seen (0 for a model without any: a no-op).
    """
    layers = [m for m in model.modules() if hasattr(m, "support_avx512bf16_for_cpu")]
    if not layers:
        return 0
    from bitsandbytes.functional import _convert_weight_packed_for_cpu_inverse

    for layer in layers:
        layer.support_avx512bf16_for_cpu = False
        weight = layer.weight
        state = getattr(weight, "quant_state", None)
        if state is not None and getattr(state, "packing_format_for_cpu", False):
            weight.data, weight.quant_state = _convert_weight_packed_for_cpu_inverse(weight.data, state)
    return len(layers)
