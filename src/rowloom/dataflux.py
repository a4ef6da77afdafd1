"""`rowloom import-dataflux`: turn an AI-DataFlux config.yaml into a workflow spec and a gateway config."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.scalarstring import LiteralScalarString

from engine import ConfigImportError, load_spec, parse_yaml, to_plain
from engine.gateway import load_gateway


@dataclass(frozen=True)
class Imported:
    """The two YAML texts, and the environment variables the gateway config expects for API keys."""

    workflow_yaml: str
    gateway_yaml: str
    key_variables: dict[str, str]  # variable -> model it is for
    warnings: list[str]  # each setting that was dropped or could not be mapped, and why

# The settings of an AI-DataFlux config that the import maps, by section; any other one is reported as dropped.
MAPPED: dict[str, set[str]] = {
    "": {"datasource", "excel", "mysql", "columns_to_extract", "columns_to_write", "prompt", "validation", "models",
         "channels"},
    "datasource": {"type", "concurrency"},
    "datasource.concurrency": {"max_workers", "api_pause_duration", "api_error_trigger_window", "save_interval",
                               "retry_limits"},
    "excel": {"input_path", "output_path"},
    "mysql": {"host", "port", "user", "password", "database", "table_name"},
    "prompt": {"system_prompt", "template", "required_fields", "use_json_schema", "temperature"},
    "validation": {"enabled", "field_rules"},
    "models": {"id", "name", "model", "channel_id", "api_key", "weight", "safe_rps", "timeout", "temperature",
               "supports_json_schema", "supports_advanced_params"},
    "channels": {"name", "base_url", "api_path", "timeout", "proxy", "ssl_verify"},
}
WHY = {
    "global": "Rowloom's logging is set by LOG_LEVEL",
    "datasource.concurrency.batch_size": "Rowloom keeps a continuous window of in_flight rows; there are no batches",
}


def _dropped(section: str, values: Any, warnings: list[str], *, label: str | None = None) -> None:
    """A warning for each key of `values` that the import does not map."""
    if not isinstance(values, dict):
        return
    for key in values:
        if key not in MAPPED[section]:
            where = f"{label or section}.{key}".lstrip(".")
            reason = WHY.get(f"{section}.{key}".lstrip("."), "Rowloom has no such setting")
            warnings.append(f"{where}: dropped ({reason})")


def _env_name(model: str) -> str:
    return "ROWLOOM_KEY_" + (re.sub(r"[^A-Za-z0-9]+", "_", model).strip("_").upper() or "MODEL")


def _dump(data: dict[str, Any], header: str) -> str:
    yaml = YAML()
    yaml.width = 4096
    out = io.StringIO()
    out.write(header)
    yaml.dump(data, out)
    return out.getvalue()


def convert(text: str, *, name: str) -> Imported:
    """Convert an AI-DataFlux config's text; the workflow is validated before it is returned."""
    config = to_plain(parse_yaml(text)) or {}
    warnings: list[str] = []
    for section in ("", "datasource", "excel", "mysql", "prompt", "validation"):
        _dropped(section, config if not section else config.get(section), warnings)
    _dropped("datasource.concurrency", (config.get("datasource") or {}).get("concurrency"), warnings)
    source_type = (config.get("datasource") or {}).get("type", "excel")
    concurrency = (config.get("datasource") or {}).get("concurrency") or {}
    prompt = config.get("prompt") or {}
    validation = config.get("validation") or {}
    if not config.get("columns_to_extract") or not config.get("columns_to_write"):
        raise ConfigImportError("columns_to_extract and columns_to_write are both needed")
    workflow: dict[str, Any] = {"name": name}
    if source_type == "mysql":
        mysql = config.get("mysql") or {}
        workflow["source"] = {"kind": "mysql", "connection": {
            "host": mysql.get("host", "127.0.0.1"), "port": int(mysql.get("port", 3306)),
            "user": mysql.get("user", "root"), "password": "${ROWLOOM_MYSQL_PASSWORD}",
            "database": mysql.get("database", "")}, "table": mysql.get("table_name", ""), "key": "id"}
    else:
        excel = config.get("excel") or {}
        workflow["source"] = {"kind": "excel", "path": excel.get("input_path", "input.xlsx")}
        workflow["sink"] = {"kind": "excel", "path": excel.get("output_path", "output.xlsx")}
    workflow["columns"] = {"input": list(config["columns_to_extract"]), "output": dict(config["columns_to_write"])}
    workflow["prompt"] = {k: v for k, v in {
        "system": LiteralScalarString(prompt["system_prompt"]) if prompt.get("system_prompt") else None,
        "template": LiteralScalarString(prompt.get("template", "{record_json}")),
        "required_fields": list(prompt.get("required_fields") or []),
        "json_schema": bool(prompt.get("use_json_schema", True)),
    }.items() if v is not None}
    if validation.get("enabled", True) and validation.get("field_rules"):
        workflow["validation"] = {k: list(v) for k, v in validation["field_rules"].items()}
    if prompt.get("temperature") is not None:
        workflow["model"] = {"name": "auto", "temperature": float(prompt["temperature"])}
    workflow["concurrency"] = {
        "in_flight": max(1, min(int(concurrency.get("max_workers", 64)), 10_000)),
        "pause_on_api_error_s": float(concurrency.get("api_pause_duration", 2.0)),
        "error_window_s": float(concurrency.get("api_error_trigger_window", 2.0)),
        "save_interval_s": float(concurrency.get("save_interval", 300)),
    }
    limits = concurrency.get("retry_limits") or {}
    workflow["retry"] = {k: int(limits[k]) for k in ("api_error", "content_error", "system_error") if k in limits}
    workflow_yaml = _dump(workflow, "# Imported from an AI-DataFlux config by `rowloom import-dataflux`.\n")
    load_spec(workflow_yaml)  # never hand the user a spec that does not load
    gateway, variables = _gateway(config, warnings)
    gateway_yaml = _dump(gateway, "# Imported from an AI-DataFlux config. API keys are read from the environment:\n"
                         + "".join(f"#   {var} for model {model}\n" for var, model in variables.items()))
    load_gateway(gateway_yaml)  # nor a gateway config that does not load (references included)
    return Imported(workflow_yaml, gateway_yaml, variables, warnings)


def _gateway(config: dict[str, Any], warnings: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    for key, channel in (config.get("channels") or {}).items():
        _dropped("channels", channel, warnings, label=f"channels.{key}")
    channels = {str(key): {k: v for k, v in {
        "base_url": ch.get("base_url"), "api_path": ch.get("api_path", "/v1/chat/completions"),
        "timeout": ch.get("timeout"), "proxy": ch.get("proxy") or None, "ssl_verify": ch.get("ssl_verify"),
    }.items() if v is not None} for key, ch in (config.get("channels") or {}).items()}
    variables: dict[str, str] = {}
    models = []
    for index, model in enumerate(config.get("models") or []):
        name = str(model.get("name") or model.get("model"))
        _dropped("models", model, warnings, label=f"models.{index}")
        channel = str(model.get("channel_id", ""))
        if channel not in channels:
            warnings.append(f"models.{index} ({name}): left out: its channel_id {channel!r} is not among the "
                            f"channels ({', '.join(channels) or 'none'})")
            continue
        variable = _env_name(name)
        variables[variable] = name
        models.append({k: v for k, v in {
            "name": name, "model": model.get("model"), "channel": channel,
            "api_key": f"${{{variable}}}", "weight": model.get("weight", 1), "safe_rps": model.get("safe_rps"),
            "timeout": model.get("timeout"), "temperature": model.get("temperature"),
            "supports_json_schema": model.get("supports_json_schema"),
            "supports_advanced_params": model.get("supports_advanced_params"),
        }.items() if v is not None})
    if not models:
        raise ConfigImportError("no model could be imported: " + "; ".join(warnings[-3:]) if warnings
                                else "the config lists no models")
    return {"models": models, "channels": channels}, variables
