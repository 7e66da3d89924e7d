"""Export a gateway's setup to cluster manifests (Kyma, Istio, Gardener) and lint them."""

from __future__ import annotations

from mtlskit.errors import ExportError
from mtlskit.export.check import Finding, check_manifests
from mtlskit.export.kyma import (
    ExportWarning,
    KymaExport,
    KymaInputs,
    KymaOptions,
    ServerInputs,
    render_kyma,
)
from mtlskit.export.render import object_file_names, to_yaml

__all__ = [
    "ExportError",
    "ExportWarning",
    "Finding",
    "KymaExport",
    "KymaInputs",
    "KymaOptions",
    "ServerInputs",
    "check_manifests",
    "object_file_names",
    "render_kyma",
    "to_yaml",
]
