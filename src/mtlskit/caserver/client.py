"""Talk to `mtlskit ca serve`: POST a CSR to /renew (mTLS) or /sign (token), GET trust files."""

from __future__ import annotations

import http.client
import json
import ssl
from typing import Final
from urllib.parse import urlsplit

from mtlskit.errors import PKIError

__all__ = ["CAClient"]

MAX_RESPONSE: Final = 1024 * 1024  # a chain is a few KiB; a CRL of a small CA, tens


class CAClient:
    """An HTTPS client for one CA URL.

    Args:
        url: https://host:port of `mtlskit ca serve`.
        context: the SSLContext (trust, and the client certificate for /renew).
        timeout: seconds for connecting and for each read.

    Raises:
        PKIError: the URL is not https://host[:port] (exit 2).
    """

    def __init__(self, url: str, context: ssl.SSLContext, *, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise PKIError(
                f"--ca-url {url!r} is not an https:// URL",
                "give the address of 'mtlskit ca serve', e.g. https://ca.example:9443",
            )
        self.url = url.rstrip("/")
        self.host = parts.hostname
        self.port = parts.port or 443
        self.base = parts.path.rstrip("/")
        self.context = context
        self.timeout = timeout

    def post_csr(self, path: str, csr_pem: bytes, token: str | None = None) -> bytes:
        """POST a PEM CSR; return the PEM chain the CA answered.

        Raises:
            PKIError: the CA refused (its reason and hint), or could not be reached (exit 1).
        """
        headers = {
            "Content-Type": "application/pkcs10",
            "Accept": "application/pem-certificate-chain",
        }
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self._request("POST", path, csr_pem, headers)

    def get(self, path: str) -> bytes:
        """GET /roots, /intermediates, /crl or /crl.pem.

        Raises:
            PKIError: as for post_csr.
        """
        return self._request("GET", path, None, {})

    def _request(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> bytes:
        conn = http.client.HTTPSConnection(
            self.host, self.port, context=self.context, timeout=self.timeout
        )
        try:
            conn.request(method, self.base + path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read(MAX_RESPONSE + 1)
        except ssl.SSLError as exc:
            raise PKIError(
                f"TLS with the CA at {self.url} failed: {exc.reason or exc}",
                "check --ca (the root that issued the CA server's certificate) and that "
                "the current certificate and key belong together",
                exit_code=1,
            ) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise PKIError(
                f"cannot reach the CA at {self.url}: {exc}",
                "check --ca-url and that 'mtlskit ca serve' is running",
                exit_code=1,
            ) from exc
        finally:
            conn.close()
        if len(data) > MAX_RESPONSE:
            raise PKIError(f"the CA at {self.url} sent over 1 MiB", "check --ca-url", exit_code=1)
        if response.status != 200:
            raise _refusal(self.url, method, path, response.status, data)
        return data


def _refusal(url: str, method: str, path: str, status: int, data: bytes) -> PKIError:
    try:
        body = json.loads(data)
        code, reason, hint = str(body["error"]), str(body["reason"]), str(body.get("hint", ""))
    except (ValueError, KeyError, TypeError):
        text = data[:200].decode("utf-8", "replace").strip()
        return PKIError(
            f"{method} {url}{path} answered HTTP {status}: {text}",
            "check --ca-url: is it 'mtlskit ca serve'?",
            exit_code=1,
        )
    return PKIError(f"the CA refused {path} ({code}): {reason}", hint, exit_code=1)
