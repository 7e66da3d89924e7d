"""Advertise client-CA names in the CertificateRequest: the one OpenSSL call `ssl` lacks.

The stdlib `ssl` module never calls `SSL_CTX_set_client_CA_list`, so a server built on it
sends an empty list of acceptable CA names, and clients (curl, browsers, `openssl
s_client`) cannot pick the right certificate or tell the user which CA is expected. We
make that one call through ctypes on the SSL_CTX behind an `ssl.SSLContext`, in this one
module, guarded: the SSL_CTX pointer is only trusted after OpenSSL reports back the same
verify mode and options the Python object has, and every failure falls back to "not
advertised" with a reason the caller can log.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import ssl
from pathlib import Path

__all__ = ["advertise_client_ca_names"]

# CPython's PySSLContext starts with PyObject_HEAD (refcount + type pointer), then the
# SSL_CTX pointer (Modules/_ssl.c, stable from 3.7 through 3.13).
_CTX_OFFSET = ctypes.sizeof(ctypes.c_ssize_t) + ctypes.sizeof(ctypes.c_void_p)


# ssl.VerifyMode -> OpenSSL's SSL_VERIFY_* bits (CERT_REQUIRED = PEER | FAIL_IF_NO_PEER_CERT).
_SSL_VERIFY_MODES = {ssl.CERT_NONE: 0, ssl.CERT_OPTIONAL: 1, ssl.CERT_REQUIRED: 3}


def _libssl() -> ctypes.CDLL | None:
    for name in ("libssl.so.3", ctypes.util.find_library("ssl")):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        lib.SSL_CTX_get_verify_mode.argtypes = [ctypes.c_void_p]
        lib.SSL_CTX_get_verify_mode.restype = ctypes.c_int
        lib.SSL_CTX_get_options.argtypes = [ctypes.c_void_p]
        lib.SSL_CTX_get_options.restype = ctypes.c_uint64
        lib.SSL_load_client_CA_file.argtypes = [ctypes.c_char_p]
        lib.SSL_load_client_CA_file.restype = ctypes.c_void_p
        lib.SSL_CTX_set_client_CA_list.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.SSL_CTX_set_client_CA_list.restype = None
        lib.SSL_CTX_get_client_CA_list.argtypes = [ctypes.c_void_p]
        lib.SSL_CTX_get_client_CA_list.restype = ctypes.c_void_p
        lib.OPENSSL_sk_num.argtypes = [ctypes.c_void_p]
        lib.OPENSSL_sk_num.restype = ctypes.c_int
        return lib
    return None


def advertise_client_ca_names(ctx: ssl.SSLContext, ca_file: Path) -> str | None:
    """Make `ctx` list the subjects of the certificates in `ca_file` as acceptable CAs.

    Returns:
        None on success, or why the names could not be set (the context still works and
        still verifies clients; only the hint to clients is missing).
    """
    if ssl.OPENSSL_VERSION_INFO[0] < 3:
        return f"{ssl.OPENSSL_VERSION} is older than OpenSSL 3"
    lib = _libssl()
    if lib is None:
        return "libssl could not be loaded"
    ptr = ctypes.c_void_p.from_address(id(ctx) + _CTX_OFFSET).value
    if not ptr:
        return "the SSL_CTX pointer is null"
    # The guard: the pointer is the SSL_CTX of this very context only if OpenSSL reports
    # the same verify mode and options as the Python object.
    expected_mode = _SSL_VERIFY_MODES[ctx.verify_mode]
    if lib.SSL_CTX_get_verify_mode(ptr) != expected_mode or lib.SSL_CTX_get_options(ptr) != int(
        ctx.options
    ):
        return "the ssl module's layout is not the one expected"
    names = lib.SSL_load_client_CA_file(str(ca_file).encode())
    if not names:
        return f"OpenSSL could not read CA names from {ca_file}"
    lib.SSL_CTX_set_client_CA_list(ptr, names)  # takes ownership of `names`
    listed = lib.SSL_CTX_get_client_CA_list(ptr)
    if not listed or lib.OPENSSL_sk_num(listed) < 1:
        return "OpenSSL kept no CA names"
    return None
