"""RouteSkips: the one way a rule step sends what it cannot use to `skipped`."""
from __future__ import annotations

from typing import Any, Callable, Iterable

import apache_beam as beam

from transforms.records import Skipped

SKIPPED = "skipped"


class _RouteFn(beam.DoFn):

    def __init__(self, step: Callable[[Any], Iterable[Any]]):
        self._step = step

    def process(self, element):
        for result in self._step(element):
            if isinstance(result, Skipped):
                yield beam.pvalue.TaggedOutput(SKIPPED, result)
            else:
                yield result


class RouteSkips(beam.PTransform):
    """Apply `step(element) -> iterable` (a picklable function); what it yields
    goes to the main output, except `Skipped` values, which go to `skipped`."""

    def __init__(self, step: Callable[[Any], Iterable[Any]]):
        super().__init__()
        self._step = step

    def expand(self, pcoll):
        return pcoll | beam.ParDo(_RouteFn(self._step)).with_outputs(
            SKIPPED, main="main")
