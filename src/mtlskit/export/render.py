"""Manifests as YAML: one multi-document stream, or one document per file (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import yaml

from mtlskit.export.kyma import YAML_COMMENTS, ExportWarning, KeyPath

__all__ = ["object_file_names", "to_yaml"]

HEADER = "# Rendered by mtlskit kyma render; apply in this order."


class _Dumper(yaml.SafeDumper):
    """SafeDumper that indents lists under their key, as kubectl and most manifests do."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)

    def ignore_aliases(self, data: Any) -> bool:
        """Never `&id001`/`*id001`: a list shared by two rules is written out twice."""
        return True


def _key_marks(node: yaml.Node, path: KeyPath) -> Iterator[yaml.Mark]:
    """Where each key that path reaches starts in a composed document."""
    step, rest = path[0], path[1:]
    if step is None and isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _key_marks(item, rest)
    elif step is not None and isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value != step:
                continue
            if rest:
                yield from _key_marks(value, rest)
            else:
                yield key.start_mark


def _with_comments(text: str, kind: str) -> str:
    """The document with YAML_COMMENTS for its kind on the lines above their keys.

    PyYAML cannot emit comments, so the dumped text is composed again (nodes know their
    line and column) and the comment lines are inserted, indented like the key.
    """
    comments = YAML_COMMENTS.get(kind, ())
    root = yaml.compose(text, Loader=yaml.SafeLoader) if comments else None
    if root is None:
        return text
    above: dict[int, list[str]] = {}
    for path, comment in comments:
        for mark in _key_marks(root, path):  # once per document, above the first such key
            indent = " " * mark.column
            above.setdefault(mark.line, []).extend(f"{indent}# {c}\n" for c in comment)
            break
    lines = text.splitlines(keepends=True)
    return "".join("".join(above.get(i, [])) + line for i, line in enumerate(lines))


def _document(obj: dict[str, Any]) -> str:
    text = yaml.dump(obj, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)
    return _with_comments(text, str(obj.get("kind", "")))


def _comments(warnings: Iterable[ExportWarning]) -> list[str]:
    lines = []
    for w in warnings:
        lines += [f"# WARNING {w.subject}: {w.what}", f"#   why: {w.why}", f"#   fix: {w.fix}"]
    return lines


def to_yaml(objects: Sequence[dict[str, Any]], warnings: Sequence[ExportWarning] = ()) -> str:
    """One YAML stream: a header (with every warning as a comment), then `---` documents.

    Keys keep the order they were built in, so the output is stable for golden files. The
    first key that YAML_COMMENTS explains (an AuthorizationPolicy's hosts) in each document
    gets the comment above it.
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
