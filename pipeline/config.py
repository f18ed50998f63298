"""Read a sync config file (YAML or JSON) into transforms.sync models."""
from __future__ import annotations

import json
import yaml
from apache_beam.io.filesystems import FileSystems
from pydantic import ValidationError

from transforms.sync import SyncConfig


class ConfigError(ValueError):
    """A config that cannot be used; the message names the offending key."""


# YAML 1.1, which PyYAML reads, takes these unquoted words for booleans.
_YAML_BOOLEANS = "yes, no, on, off, true, false"


def _where(loc: tuple, raw: object) -> tuple[str, object]:
    """`syncs[0].send_events.filters[1].op`, with the sync's name when known,
    and the value found there."""
    parts, node = [], raw
    for step in loc:
        if isinstance(step, int):
            name = node[step].get("name") if (
                isinstance(node, list) and step < len(node)
                and isinstance(node[step], dict)) else None
            parts.append(f"[{step}]" + (f" ({name})" if name else ""))
        else:
            parts.append(("." if parts else "") + str(step))
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            node = None
    return "".join(parts) or "config", node


def parse_config(raw: object) -> SyncConfig:
    try:
        return SyncConfig.model_validate(raw)
    except ValidationError as e:
        problems = []
        for error in e.errors(include_url=False, include_input=False):
            where, value = _where(error["loc"], raw)
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown key"
            elif error["type"] == "string_type" and isinstance(value, bool):
                key = next((k for k in reversed(error["loc"])
                            if isinstance(k, str)), "name")
                message = (f"text expected, got the boolean {str(value).lower()}"
                           f" (YAML reads {_YAML_BOOLEANS} unquoted as "
                           f"booleans: put the value in quotes, e.g. "
                           f"{key}: \"off\")")
            problems.append(f"{where}: {message}")
        raise ConfigError("; ".join(problems)) from None


def load_config(path: str) -> SyncConfig:
    """From a local path or any Beam file system (gs://... on Dataflow)."""
    try:
        with FileSystems.open(path) as f:
            text = f.read().decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read sync config {path}: {e}") from None
    is_json = path.endswith(".json")
    try:
        raw = json.loads(text) if is_json else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as e:
        raise ConfigError(
            f"{path} is not valid {'JSON' if is_json else 'YAML'}: {e}") from None
    return parse_config(raw)
