"""Client and probe: connect with mTLS, walk the seed's nine steps, and say why it failed."""

from __future__ import annotations

from mtlskit.client.codes import FAILURES, Failure
from mtlskit.client.connect import ClientIdentity, ServerTrust, load_identity, system_trust
from mtlskit.client.probe import ProbeReport, probe
from mtlskit.client.request import RequestResult, Response, request
from mtlskit.client.trace import Event, Observation, Step, Trace, walk

__all__ = [
    "FAILURES",
    "ClientIdentity",
    "Event",
    "Failure",
    "Observation",
    "ProbeReport",
    "RequestResult",
    "Response",
    "ServerTrust",
    "Step",
    "Trace",
    "load_identity",
    "probe",
    "request",
    "system_trust",
    "walk",
]
