"""Routing by type: `tagged`, the one place that reads where a value goes
(its type's `TAG`, see transforms.records.Routed), for every DoFn that
routes; RouteSkips, the one way a rule step sends what it cannot use to
`skipped`."""
from __future__ import annotations

from typing import Any, Callable, Iterable

import apache_beam as beam

from transforms.records import Routed, Skipped


def tagged(routed: Routed, value: Any = None):
    """What a DoFn yields for `routed`: its type's tagged output, or as it
    is for the main output. `value`: what to yield in its place (the
    windowed value of it that finish_bundle must yield)."""
    value = routed if value is None else value
    return value if routed.TAG is None else beam.pvalue.TaggedOutput(
        routed.TAG, value)


class _RouteFn(beam.DoFn):

    def __init__(self, step: Callable[[Any], Iterable[Any]]):
        self._step = step

    def process(self, element):
        for result in self._step(element):
            yield tagged(result)


class _Chain:
    """Steps applied in turn; a Skipped (a value with an output of its own)
    leaves the chain where it is made."""

    def __init__(self, steps: list[Callable[[Any], Iterable[Any]]]):
        self._steps = steps

    def __call__(self, element) -> list[Any]:
        # Plain loops over lists, not nested generators: this runs once per
        # record per sync.
        results = [element]
        for step in self._steps:
            stepped = []
            for result in results:
                if result.TAG:
                    stepped.append(result)
                else:
                    stepped.extend(step(result))
            results = stepped
        return results


class RouteSkips(beam.PTransform):
    """Apply `step(element) -> iterable` (a picklable function); what it yields
    goes to the main output, except `Skipped` values, which go to `skipped`."""

    def __init__(self, step: Callable[[Any], Iterable[Any]]):
        super().__init__()
        self._step = step

    @property
    def step(self) -> Callable[[Any], Iterable[Any]]:
        """The step as a function, to compose it into another (see chain)."""
        return self._step

    @classmethod
    def chain(cls, *steps: "RouteSkips") -> "RouteSkips":
        """The steps as one: one DoFn, so no runner pays a step per rule
        (the DirectRunner inspects every DoFn for every bundle)."""
        return cls(_Chain([s.step for s in steps]))

    def expand(self, pcoll):
        return pcoll | beam.ParDo(_RouteFn(self._step)).with_outputs(
            Skipped.TAG, main="main")
