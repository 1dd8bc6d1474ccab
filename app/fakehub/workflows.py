"""Which workflows a repository_dispatch starts, and their run names, read from the repository as GitHub does.

GitHub starts the default branch's workflows whose `on.repository_dispatch.types` include the event type,
and titles each run by its `run-name`. We evaluate the one expression form run names use in practice,
`format('...', github.event.client_payload.x, ...)`, not GitHub's whole expression language.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from app.fakehub import git

WORKFLOWS_DIR = ".github/workflows"
_FORMAT = re.compile(r"format\(\s*'((?:[^']|'')*)'\s*((?:,\s*[\w.\-]+\s*)*)\)")


def _lookup(payload: dict[str, Any], dotted: str) -> str:
    value: Any = {"github": {"event": payload, "event_name": "repository_dispatch"}}
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)


def run_name(template: str | None, event: dict[str, Any], fallback: str) -> str:
    if not template:
        return fallback
    match = _FORMAT.search(template)
    if match is None:
        return template.strip() if "${{" not in template else fallback
    fmt = match.group(1).replace("''", "'")
    args = [a.strip() for a in match.group(2).split(",") if a.strip()]
    return re.sub(r"\{(\d+)\}", lambda m: _lookup(event, args[int(m.group(1))]) if int(m.group(1)) < len(args) else "", fmt)


def dispatched_workflows(git_dir: str, sha: str, event_type: str, event: dict[str, Any]) -> list[tuple[str, str]]:
    """(path, run title) of each workflow at `sha` that a `repository_dispatch` of `event_type` starts."""
    repo = git.open_repo(git_dir)
    found = git.read_path(repo, sha, WORKFLOWS_DIR)
    if found is None or found[0] != "dir":
        return []
    started = []
    for entry in repo[found[2]].items():
        name = entry.path.decode()
        if not name.endswith((".yml", ".yaml")):
            continue
        try:
            doc = yaml.safe_load(repo[entry.sha].data)
        except yaml.YAMLError:
            continue  # GitHub shows a broken workflow file as an error and starts nothing
        if not isinstance(doc, dict):
            continue
        triggers = doc.get("on", doc.get(True))  # YAML 1.1 reads a bare `on` key as True
        if isinstance(triggers, str):
            triggers = {triggers: None}
        elif isinstance(triggers, list):
            triggers = {t: None for t in triggers}
        if not isinstance(triggers, dict) or "repository_dispatch" not in triggers:
            continue
        types = (triggers.get("repository_dispatch") or {}).get("types") if isinstance(
            triggers.get("repository_dispatch"), dict) else None
        if types and event_type not in types:
            continue
        title = run_name(doc.get("run-name"), event, fallback=str(doc.get("name") or name))
        started.append((f"{WORKFLOWS_DIR}/{name}", title))
    return started
