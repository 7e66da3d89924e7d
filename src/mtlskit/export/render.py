"""Manifests as YAML: one multi-document stream, or one document per file (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import yaml

from mtlskit.export.kyma import ExportWarning

__all__ = ["object_file_names", "to_yaml"]

HEADER = "# Rendered by mtlskit kyma render; apply in this order."


class _Dumper(yaml.SafeDumper):
    """SafeDumper that indents lists under their key, as kubectl and most manifests do."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _document(obj: dict[str, Any]) -> str:
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)


def _comments(warnings: Iterable[ExportWarning]) -> list[str]:
    lines = []
    for w in warnings:
        lines += [f"# WARNING {w.subject}: {w.what}", f"#   why: {w.why}", f"#   fix: {w.fix}"]
    return lines


def to_yaml(objects: Sequence[dict[str, Any]], warnings: Sequence[ExportWarning] = ()) -> str:
    """One YAML stream: a header (with every warning as a comment), then `---` documents.

    Keys keep the order they were built in, so the output is stable for golden files.
    """
    head = "\n".join([HEADER, *_comments(warnings)]) + "\n"
    return head + "".join(f"---\n{_document(obj)}" for obj in objects)


def object_file_names(
    objects: Sequence[dict[str, Any]], warnings: Sequence[ExportWarning] = ()
) -> list[tuple[str, str]]:
    """One file per object, numbered in apply order: `01-secret-NAME.yaml`, ...

    The warnings go to `00-warnings.txt` when there are any.
    """
    files = []
    if warnings:
        files.append(("00-warnings.txt", "\n".join(_comments(warnings)) + "\n"))
    for i, obj in enumerate(objects, 1):
        kind = str(obj["kind"]).lower()
        name = str(obj["metadata"]["name"])
        files.append((f"{i:02d}-{kind}-{name}.yaml", _document(obj)))
    return files
