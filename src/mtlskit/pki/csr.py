"""Review a user's CSR before signing: signature, key strength, and what the profile drops."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mtlskit.errors import CSRError
from mtlskit.pki.keys import PublicKey, check_public_key
from mtlskit.pki.names import describe_general_name
from mtlskit.pki.profiles import Profile

__all__ = ["CSRReview", "review_csr"]

_KEEP_SAN_TYPES = (x509.DNSName, x509.IPAddress, x509.UniformResourceIdentifier, x509.RFC822Name)


@dataclass(frozen=True, slots=True)
class CSRReview:
    """What will be certified from a CSR, and what it asked for that will not be.

    Attributes:
        subject: the subject name, as requested.
        public_key: the key to certify.
        sans: the subjectAltNames kept from the request.
        dropped: one line per requested extension or name the profile overrides.
    """

    subject: x509.Name
    public_key: PublicKey
    sans: tuple[x509.GeneralName, ...]
    dropped: tuple[str, ...]


def _describe_extension(ext: x509.Extension[x509.ExtensionType]) -> str:
    value = ext.value
    if isinstance(value, x509.BasicConstraints):
        return f"basicConstraints CA:{str(value.ca).upper()}" + (
            f", pathlen:{value.path_length}" if value.path_length is not None else ""
        )
    if isinstance(value, x509.KeyUsage):
        bits = [
            name
            for name in (
                "digital_signature",
                "key_encipherment",
                "key_cert_sign",
                "crl_sign",
                "content_commitment",
                "data_encipherment",
                "key_agreement",
            )
            if getattr(value, name)
        ]
        return f"keyUsage {', '.join(bits)}"
    if isinstance(value, x509.ExtendedKeyUsage):
        names = {
            ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
            ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
            ExtendedKeyUsageOID.CODE_SIGNING: "codeSigning",
            ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE: "anyExtendedKeyUsage",
        }
        return "extendedKeyUsage " + ", ".join(names.get(o, o.dotted_string) for o in value)
    name = ext.oid._name  # cryptography's short name, e.g. "nameConstraints"
    return str(name) if name and name != "Unknown OID" else ext.oid.dotted_string


def review_csr(csr: x509.CertificateSigningRequest, profile: Profile) -> CSRReview:
    """Check a CSR and decide what of it a leaf of this profile will carry.

    The profile alone decides basic constraints, key usage and EKU: a request for CA:TRUE
    or keyCertSign still yields a leaf, and `dropped` says so.

    Raises:
        CSRError: bad signature, weak or unsupported key, or no usable name at all.
    """
    if not csr.is_signature_valid:
        raise CSRError(
            "the CSR's signature does not verify: it was altered or signed with another key",
            "create the CSR again with the private key it names ('openssl req -new -key ...')",
        )
    key = csr.public_key()
    problem = check_public_key(key)
    if problem is not None:
        raise CSRError(
            f"the CSR's key cannot be certified: {problem}", "generate a new key and CSR"
        )
    sans: list[x509.GeneralName] = []
    dropped: list[str] = []
    for ext in csr.extensions:
        if isinstance(ext.value, x509.SubjectAlternativeName):
            for general_name in ext.value:
                if isinstance(general_name, _KEEP_SAN_TYPES):
                    sans.append(general_name)
                else:
                    dropped.append(f"subjectAltName {describe_general_name(general_name)}")
            continue
        dropped.append(_describe_extension(ext))
    has_cn = bool(csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME))
    if not has_cn and not sans:
        raise CSRError(
            "the CSR has neither a common name nor a subjectAltName",
            "create the CSR with -subj '/CN=name' or pass --san",
        )
    return CSRReview(
        subject=csr.subject,
        public_key=key,  # type: ignore[arg-type]  # check_public_key accepted its type
        sans=tuple(sans),
        dropped=tuple(f"{d} (the {profile.name} profile decides this)" for d in dropped),
    )
