"""``nmt compare``: measuring what attention changes (alignment, calibration, length, gradients)."""
