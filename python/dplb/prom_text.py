"""A small writer of Prometheus text-format families for the parts of /metrics that are
rendered from a status object (BGP, session sync) rather than the engine's collector."""

from __future__ import annotations


def escape(value: str) -> str:
    """A label value as the text format wants it."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Families:
    """Families appended in order; `base` is the label text every series carries
    (`cluster="c",node="n"`), each sample adds its own labels (`,peer="lb2"`)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
        self.lines.append(f"# HELP {name} {help_}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            self.lines.append(f"{name}{{{self.base}{labels}}} {value:g}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n" if self.lines else ""
