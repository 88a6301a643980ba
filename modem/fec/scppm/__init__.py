# SPDX-License-Identifier: Apache-2.0
"""SCPPM (CCSDS 142.0-B-1 High Photon Efficiency): information blocks ``(*batch, k)`` to PPM slot
pulses, and slot counts back to CRC-checked blocks with a per-codeword validity flag.
"""
from .code import SCPPMCode
from .decoder import CodewordDeinterleaver, DecodeResult, SCPPMDecoder, SCPPMReceiver, llr_weight
from .encoder import (ChannelInterleaver, SCPPMEncoder, SCPPMTransmitter, accumulate, attach_asm, attach_csm,
                      conv_encode, deinterleave_bits, interleave_bits, ppm_map, ppm_unmap, puncture, repeat,
                      slice_blocks, symbols_to_slots)

__all__ = ["SCPPMCode", "SCPPMEncoder", "SCPPMDecoder", "SCPPMReceiver", "SCPPMTransmitter", "DecodeResult",
           "CodewordDeinterleaver",
           "ChannelInterleaver", "llr_weight", "accumulate", "attach_asm", "attach_csm", "conv_encode",
           "deinterleave_bits", "interleave_bits", "ppm_map", "ppm_unmap", "puncture", "repeat", "slice_blocks",
           "symbols_to_slots"]
