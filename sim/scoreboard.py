"""Scoreboard: compares the beats a block emits with the golden model's expected beats, in order."""

from __future__ import annotations

__all__ = ["Scoreboard", "ScoreboardMismatch"]


class ScoreboardMismatch(AssertionError):
    """The RTL's output differs from the golden model's."""


class Scoreboard:
    """Checks each observed beat against the next expected one of its port as it arrives.

    ``expected`` maps output port names to lists of payloads (dict / list / int, as
    :mod:`spikeforge.sim.payload` unpacks them) computed by the golden op functions.
    """

    def __init__(self, block: str, expected: dict[str, list]):
        self.block = block
        self.expected = expected
        self.seen = {port: 0 for port in expected}

    def observe(self, port: str, payload) -> None:
        i = self.seen[port]
        if i >= len(self.expected[port]):
            raise ScoreboardMismatch(f"{self.block}.{port}: unexpected extra beat {i}: {payload}")
        want = self.expected[port][i]
        if payload != want:
            diff = {k: (want[k], payload.get(k)) for k in want if want[k] != payload.get(k)} \
                if isinstance(want, dict) and isinstance(payload, dict) else (want, payload)
            raise ScoreboardMismatch(f"{self.block}.{port}: beat {i} differs from the golden model "
                                     f"(field: (expected, got)): {diff}")
        self.seen[port] = i + 1

    def done(self, port: str | None = None) -> bool:
        ports = [port] if port else list(self.expected)
        return all(self.seen[p] == len(self.expected[p]) for p in ports)

    def finish(self) -> dict[str, int]:
        """Raises unless every expected beat was observed; returns the beat counts per port."""
        for port, beats in self.expected.items():
            if self.seen[port] != len(beats):
                raise ScoreboardMismatch(f"{self.block}.{port}: got {self.seen[port]} of {len(beats)} expected beats")
        return dict(self.seen)
