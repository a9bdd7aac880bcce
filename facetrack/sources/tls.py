"""Certificate checks of TLS streams (`https://`, `rtsps://`, `rtmps://`).

FFmpeg does not verify a server's certificate unless told to (`tls_verify` defaults to 0), and its TLS library
looks for CA certificates where it was built, which need not be where this system keeps them: both are passed.
When FFmpeg refuses a certificate it says only "Input/output error"; Python's `ssl` tells why.
"""

from __future__ import annotations

import os
import socket
import ssl
import urllib.parse
from pathlib import Path

from facetrack import urls
from facetrack.errors import FacetrackError

TLS_SCHEMES = {"https": 443, "rtsps": 322, "rtmps": 443}  # stream schemes over TLS, and their default ports
# Where systems keep their CA bundle (Debian/Ubuntu, Fedora/RHEL, openSUSE, Alpine/macOS, Homebrew).
_CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
               "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", "/etc/ssl/ca-bundle.pem", "/etc/ssl/cert.pem",
               "/usr/local/etc/openssl/cert.pem", "/opt/homebrew/etc/openssl@3/cert.pem")
TLS_OPT_OUT = "live.tls_verify: false"


def is_tls(url: str) -> bool:
    return urllib.parse.urlsplit(url).scheme.lower() in TLS_SCHEMES


def ca_bundle() -> str:
    """The CA certificates that vouch for servers: $SSL_CERT_FILE, else this system's bundle (as Python's `ssl`
    and OpenSSL find it, then the usual places, then `certifi` where installed)."""
    named = os.environ.get("SSL_CERT_FILE")
    if named:
        if not Path(named).is_file():
            raise FacetrackError(f"SSL_CERT_FILE={named} is not a file: point it at a PEM bundle of CA "
                                 "certificates, or unset it")
        return named
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile, *_CA_BUNDLES):
        if candidate and Path(candidate).is_file():
            return candidate
    try:
        import certifi  # type: ignore[import-not-found]

        return str(certifi.where())
    except ImportError:
        raise FacetrackError("no CA certificate bundle found to check TLS cameras: install your system's "
                             "ca-certificates, point SSL_CERT_FILE at a bundle, or set "
                             f"{TLS_OPT_OUT} (no check at all)") from None


def tls_options(url: str, verify: bool) -> dict[str, str]:
    """FFmpeg options for a TLS stream: verify the certificate and host name against the CA bundle, or not.

    An http:// stream gets them too: a redirect to https:// would otherwise go unchecked."""
    if not is_tls(url) and urllib.parse.urlsplit(url).scheme.lower() != "http":
        return {}
    if not verify:
        return {"tls_verify": "0"}
    return {"tls_verify": "1", "ca_file": ca_bundle()}


def not_verified_warning(url: str) -> str:
    return (f"{TLS_OPT_OUT}: the certificate of {urls.origin(url)} is not checked (anyone on the way can pose "
            "as this camera)")


def certificate_problem(url: str, timeout: float) -> str | None:
    """Why the server of `url` fails certificate verification; None when it passes, or when the server cannot be
    reached to tell."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port or TLS_SCHEMES.get(parts.scheme.lower(), 443)
        context = ssl.create_default_context(cafile=ca_bundle())
        with socket.create_connection((host, port), timeout=timeout) as raw:
            with context.wrap_socket(raw, server_hostname=host):
                return None
    except ssl.SSLCertVerificationError as exc:
        why = (exc.verify_message or exc.reason or "not trusted").rstrip(".")
        return f"its TLS certificate is refused ({why})"
    except (OSError, ValueError, FacetrackError):
        return None


def refused_message(label: str, problem: str) -> str:
    return (f"cannot open stream {label}: {problem}; trust its CA (add it to the system bundle or SSL_CERT_FILE), "
            f"or set {TLS_OPT_OUT} to accept any certificate")
