"""The runner sees throttling: a drained `CallTally` as Beam counters.

The client counts on the sink's sender threads, which have no Beam metrics
context (an increment there is lost); the sink drains the tally from its own
DoFn thread (process, finish_bundle) and reports it here. Counters are in the
pipeline's namespace, under Beam's names (see transforms/mailchimp/tally.py).
The name is what Dataflow's autoscaler goes by: Beam's own IOs report
`cumulativeThrottlingSeconds` each under a namespace of their own (`gcsio`,
`BigQueryWriteFn`, ...). Seeing it, the autoscaler does not add workers that
Mailchimp would only throttle too.

Listeners (`listen`) get every report too: a local batch run's progress line
counts the requests sent that way (pipeline/progress.py; transforms/ knows
nothing of it).
"""
from __future__ import annotations

import functools
from typing import Callable, Mapping

from apache_beam.metrics import Metrics

from transforms.records import NAMESPACE


Listener = Callable[[Mapping[str, int]], None]
_listeners: list[Listener] = []


def listen(listener: Listener) -> None:
    """Call `listener` with every report of this process (once, however
    often it is registered)."""
    if listener not in _listeners:
        _listeners.append(listener)


@functools.lru_cache(maxsize=None)
def _counter(name: str):
    return Metrics.counter(NAMESPACE, name)


def report_throttling(counts: Mapping[str, int]) -> None:
    """Add `counts` (CallTally.drain()) to the counters of the same names.
    Call it from a DoFn method, not from another thread."""
    for name, n in counts.items():
        if n:
            _counter(name).inc(n)
    for listener in _listeners:
        listener(counts)
