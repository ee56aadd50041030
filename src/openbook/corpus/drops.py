"""Dropped input is counted with its reason, so a user learns why pages vanished."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class DropTally:
    """Counts records that were skipped, per reason, and keeps the first few locations of each."""

    examples_per_reason: int = 5
    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def drop(self, reason: str, path: str, line: int | None = None) -> None:
        self.counts[reason] += 1
        kept = self.examples.setdefault(reason, [])
        if len(kept) < self.examples_per_reason:
            kept.append(f"{path}:{line}" if line is not None else path)

    def merge(self, other: DropTally) -> None:
        """`other`'s drops counted after these (its examples after these, up to the limit)."""
        for reason, count in other.counts.items():
            self.counts[reason] += count
            kept = self.examples.setdefault(reason, [])
            kept.extend(other.examples.get(reason, [])[: self.examples_per_reason - len(kept)])

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @classmethod
    def from_dict(cls, counted: dict[str, dict[str, object]]) -> DropTally:
        """The tally `as_dict` gave (a resumed build goes on counting where it stopped)."""
        tally = cls()
        for reason, entry in counted.items():
            count, examples = entry.get("count"), entry.get("examples")
            tally.counts[reason] = count if isinstance(count, int) else 0
            tally.examples[reason] = [str(example) for example in examples] if isinstance(examples, list) else []
        return tally

    def as_dict(self) -> dict[str, dict[str, object]]:
        return {
            reason: {"count": count, "examples": self.examples.get(reason, [])}
            for reason, count in self.counts.most_common()
        }

    def summary(self) -> str:
        if not self.counts:
            return "no records dropped"
        parts = [f"{count} {reason}" for reason, count in self.counts.most_common()]
        return f"{self.total} records dropped: " + ", ".join(parts)
