"""docs/ stays true to the code: every key of the node config (the pydantic models of
dplb.config) has its entry in docs/config.md, and the README points at docs/."""

from __future__ import annotations

import re
import typing
from pathlib import Path

from pydantic import BaseModel

from dplb.config import NodeConfig

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _models_in(annotation: object) -> list[tuple[type[BaseModel], str]]:
    """The config models an annotation holds, each with the suffix its path takes
    (`[]` per list level: `ports[]`, `local_addresses[][]`)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [(annotation, "")]
    out = []
    origin = typing.get_origin(annotation)
    for arg in typing.get_args(annotation):
        suffix = "[]" if origin is list else ""
        out += [(m, suffix + s) for m, s in _models_in(arg)]
    return out


def config_keys(model: type[BaseModel] = NodeConfig, prefix: str = "") -> list[str]:
    """Every key of the node config as a dotted path: `dataplane.ports[].device`."""
    keys = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        keys.append(path)
        for sub, suffix in _models_in(field.annotation):
            keys += config_keys(sub, f"{path}{suffix}.")
    return keys


def test_the_config_walk_finds_nested_keys() -> None:
    keys = config_keys()
    assert "dataplane.ports[].device" in keys
    assert "services[].reals[].weight" in keys
    assert "dataplane.local_ports.reuse_delay" in keys


def test_every_config_key_is_in_the_config_reference() -> None:
    text = (DOCS / "config.md").read_text()
    documented = set(re.findall(r"`([a-z_][a-z0-9_.\[\]]*)`", text))
    missing = [key for key in config_keys() if key not in documented]
    assert not missing, f"docs/config.md does not describe: {', '.join(missing)}"


def test_the_readme_points_at_docs_and_the_docs_at_each_other() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "../shared/" not in readme
    for page in ("architecture.md", "config.md", "operations.md"):
        assert (DOCS / page).is_file(), page
        assert f"docs/{page}" in readme, page
    assert "threads.md" in (DOCS / "architecture.md").read_text()
