"""How a person opens an mTLS site in their own browser: which files, where to import, the URL."""

from __future__ import annotations

from pathlib import Path

__all__ = ["browser_lines", "p12_hint"]


def p12_hint(p12: Path, password: Path | None) -> str:
    """One line for `ca issue client --p12`: what to do with NAME.p12 in a browser.

    Args:
        p12: the PKCS#12 file written.
        password: the file holding its generated password (None when the user gave one).
    """
    where = f"password in {password.name}" if password else "your password"
    return (
        f"  browser  import {p12.name} ({where}) under Your certificates in Chrome's or "
        "Firefox's certificate manager (docs/browser.md)"
    )


def browser_lines(p12: Path, password: Path, root: Path, url: str) -> list[str]:
    """The steps to call `url` from Chrome, Edge or Firefox with the client certificate in `p12`.

    Args:
        p12: the client's PKCS#12 file (key, certificate and intermediate).
        password: the file holding the PKCS#12 password.
        root: the root CA certificate that signed the server's certificate.
        url: the gateway's URL.

    Returns:
        The lines to print, without trailing newlines.
    """
    return [
        f"1. your certificate: {p12}",
        f"   its password is in {password} (keep the two apart when you hand them out)",
        "   Chrome/Edge: chrome://certificate-manager (edge://certificate-manager), Your",
        "     certificates, Import (older versions: Settings, Privacy and security, Security,",
        "     Manage certificates); Firefox: Settings, Privacy & Security, Certificates,",
        "     View Certificates, Your Certificates, Import; macOS: open the file (Keychain",
        "     Access); Windows: open the file (Certificate Import Wizard, Current User).",
        f"2. trust the demo root for websites: {root}",
        "   Chrome/Edge: certificate manager, Local certificates, Installed by you, Trusted",
        "     certificates, Import; Firefox: View Certificates, Authorities, Import, tick",
        "     'Trust this CA to identify websites'; macOS and Windows: see docs/browser.md.",
        "   (skip it and the browser says ERR_CERT_AUTHORITY_INVALID / SEC_ERROR_UNKNOWN_ISSUER)",
        f"3. open {url}",
        f"   and pick the certificate '{p12.stem}' when the browser asks; the page shows what",
        "   the workload received: your subject in x-forwarded-client-cert and X-Client-Subject.",
        "   Restart the browser after importing if it does not offer the certificate.",
        "   Errors and other systems (old macOS/Windows: --p12-profile legacy): docs/browser.md",
    ]
