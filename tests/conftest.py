"""Shared test configuration: deterministic hypothesis, single-threaded torch, Ctrl-C live."""

from __future__ import annotations

import os
import signal

import torch
from hypothesis import HealthCheck, settings

torch.set_num_threads(int(os.environ.get("NCSN_TEST_THREADS", "1")))

# A test run started in the background of a non-interactive shell (`pytest &` in a script)
# inherits SIGINT ignored, as does every process it starts, and the library rightly leaves an
# ignored SIGINT ignored: the Ctrl-C tests would then see no KeyboardInterrupt. They test what
# an interactive process does, so the run restores Python's handler (children get SIG_DFL).
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

settings.register_profile(
    "ci",
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
