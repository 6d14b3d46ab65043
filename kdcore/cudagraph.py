"""A training step captured once as a CUDA graph and replayed, for :func:`kdcore.train.fit`.

On a GPU the small models of the Hinton presets are launch-bound: an eager step of the
784-1200-1200-10 teacher (forward with dropout, loss, backward, clipping, the fused optimiser
step, the max-norm constraint, the epoch's running sums) launches some sixty kernels that each
run for a few microseconds, and the host spends longer launching them than the device spends
running them. A CUDA graph launches the whole step at once (PyTorch's "whole-network capture":
https://pytorch.org/docs/stable/notes/cuda.html#whole-network-capture).

What a captured step may do is narrow, and :func:`~kdcore.train.fit` arranges it:

- it reads only *static* tensors, the same memory at every replay: the batch's indices (and its
  jittered inputs) are copied into fixed buffers before each replay, the learning rate is a
  one-element device tensor filled before each replay, the gradients are zeroed in place
  instead of freed, and the epoch's sums grow in place;
- no host synchronisation and no Python state that changes from step to step. The trainer
  cannot check this of an arbitrary loss, so a method opts in through its registry entry
  (``Method.graph_safe``); dropout draws from the default CUDA generator, which capture handles.

The first few steps run eagerly on a side stream (cuBLAS and the optimiser's momentum buffers
are set up there, as capture requires); the next one is captured and every later full-size step
replays it. When capture fails, the step says why in :attr:`StepGraph.error` and every later
call runs eagerly: the run goes on, only slower.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import torch

WARMUP_STEPS = 3  # eager steps before the capture (PyTorch's docs use 3 for whole-network capture)

# One capture at a time in a process (PyTorch's rule); other threads may go on launching their
# own work meanwhile, so the capture checks only its own thread's calls ("thread_local": with
# "global", another training thread's ordinary cudaMalloc would fail during the capture).
_CAPTURE = threading.Lock()


class StepGraph:
    """``step()``, a training step that reads only static tensors, run eagerly for the first
    :data:`WARMUP_STEPS` calls, then captured once and replayed at every later call."""

    def __init__(self, step: Callable[[], torch.Tensor]):
        self.step = step
        self.graph: torch.cuda.CUDAGraph | None = None
        self.calls = 0
        self.replays = 0
        self.error = ""  # why capture failed; the steps then run eagerly
        self._stream = torch.cuda.Stream()

    def __call__(self) -> torch.Tensor | None:
        """Run the step once. Returns the loss of an eager step; None after a replay (the
        graph's loss tensor is not kept: the running sums are the step's output)."""
        self.calls += 1
        if self.graph is not None:
            self.graph.replay()
            self.replays += 1
            return None
        if self.error:
            return self.step()
        if self.calls <= WARMUP_STEPS:
            self._stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self._stream):
                loss = self.step()
            torch.cuda.current_stream().wait_stream(self._stream)
            return loss
        graph = torch.cuda.CUDAGraph()
        try:
            # the warm-up's stream: its cuBLAS workspace is set up before capture starts
            with (
                _CAPTURE,
                torch.cuda.graph(graph, stream=self._stream, capture_error_mode="thread_local"),
            ):
                self.step()
        except RuntimeError as e:  # an op that syncs or allocates outside the graph's pool
            self.error = (str(e).strip().splitlines() or ["capture failed"])[0]
            torch.cuda.synchronize()
            return self.step()  # capture ran nothing: this call's step still has to happen
        self.graph = graph
        graph.replay()
        self.replays += 1
        return None

    def release(self) -> None:
        """Free the graph and its memory pool."""
        if self.graph is not None:
            self.graph.reset()
            self.graph = None
