# SPDX-License-Identifier: Apache-2.0
"""Synchronisation: attached-sync-marker frame sync on soft bits (Massey's rule, hard correlation)
and a streaming SEARCH -> CHECK -> LOCK -> FLYWHEEL synchroniser."""
from .frame_sync import (ASM, ASM_BITS, ASM_LEN, ASMFrameSync, FrameSyncConfig, FrameSyncState, SyncedFrames,
                         SyncMode, hard_errors, massey_metric)

__all__ = ["ASM", "ASM_BITS", "ASM_LEN", "ASMFrameSync", "FrameSyncConfig", "FrameSyncState", "SyncedFrames",
           "SyncMode", "hard_errors", "massey_metric"]
