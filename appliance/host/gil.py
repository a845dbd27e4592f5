"""How long a worker thread may keep the GIL while the event loop waits for it.

Plate reads and sensor polls run in threads; their Python parts (pre- and post-processing
around onnxruntime, pymodbus framing) hold the GIL. CPython asks a holder to let go after
`sys.getswitchinterval()` (5 ms by default), so a lane's decision can wait 5 ms per hand-over
behind a reader, and longer when the holder is a thread the kernel has stopped for its CPU
quota until the next period. Asked after 1 ms instead, the event loop waits at most about
1 ms per hand-over; a hand-over costs only when a thread is waiting for the GIL.
"""

from __future__ import annotations

import sys

SWITCH_INTERVAL_S = 0.001


def hand_over_sooner(interval_s: float = SWITCH_INTERVAL_S) -> float:
    """Set the interval after which a thread holding the GIL is asked to let go; returns the
    previous one (to restore)."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(interval_s)
    return previous
