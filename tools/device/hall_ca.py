"""The hall's own certificate authority, and the broker's server certificate it signs, for TLS
between terminals, daemon and mosquitto (`hcp broker config --tls`).

    <broker folder>/tls/
      hall-ca.pem   the hall CA's certificate: the daemon's [mqtt] ca, and (as DER) each
                    terminal's tls_ca
      hall-ca.key   its private key (0600): only needed to issue a new broker certificate
      broker.pem    the broker's certificate, signed by the hall CA, for its names and addresses
      broker.key    its private key (0600), read by mosquitto

Made once: a CA that exists is kept (terminals trust it; a new one means provisioning every
terminal again), and a broker certificate is only replaced when asked (`new_server=True`).

Choices, and why:
- RSA-2048 keys: what the terminal does with them is verify two signatures, a public-key
  operation that costs an ESP32 little; ECDSA verification is a slow software scalar
  multiplication on the original ESP32.
- Valid from 1999-12-31: an ESP32 whose clock was never set counts from 2000-01-01, and
  MicroPython's mbedtls checks a certificate's dates against that clock (the terminals are on a
  closed network, without NTP). A certificate "not yet valid" would lock every terminal out.
- The CA is valid for 20 years, the broker's certificate for 10 (renew it with
  `--new-server-cert`: the terminals keep working, they trust the CA, not the certificate).
- The terminal checks the broker's certificate against a DNS name (`server_name`), not an IP
  address: mbedtls matches IP addresses in a certificate only from version 3.5, and which one an
  ESP32 firmware carries depends on its ESP-IDF. The daemon (OpenSSL) checks either.
"""
from __future__ import annotations

import datetime
import ipaddress
import os
import re
import socket
from collections.abc import Sequence
from typing import NamedTuple

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from haochaping.daemon.errors import HcpError

FOLDER = "tls"
CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY = "hall-ca.pem", "hall-ca.key", "broker.pem", "broker.key"
NOT_BEFORE = datetime.datetime(1999, 12, 31, tzinfo=datetime.UTC)
CA_YEARS, SERVER_YEARS = 20, 10
_NAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
                   r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


class Files(NamedTuple):
    ca_cert: str
    ca_key: str
    cert: str
    key: str


class Issued(NamedTuple):
    files: Files
    new_ca: bool
    new_server: bool
    hosts: list[str]  # what the broker's certificate names: DNS names first, then addresses


def files(broker_folder: str) -> Files:
    d = os.path.join(os.path.abspath(broker_folder), FOLDER)
    return Files(*(os.path.join(d, n) for n in (CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY)))


def has_ca(broker_folder: str) -> bool:
    return os.path.exists(files(broker_folder).ca_cert)


def check_host(host: str) -> str:
    """A DNS name or an IP address for the broker's certificate; HcpError naming it if not."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not _NAME.match(host) or host.replace(".", "").isdigit():
        raise HcpError("--tls-host %r: a host name (letters, digits, '-', '.') or an IP address"
                       % host)
    return host.lower()


def default_hosts(listen: str) -> list[str]:
    """This server's host name, localhost, 127.0.0.1 and the address it listens on (unless that
    is every address): what the daemon and terminals can check the certificate against."""
    hosts = []
    name = socket.gethostname()
    if name and _NAME.match(name):
        hosts.append(name.lower())
    hosts += ["localhost", "127.0.0.1"]
    if listen not in ("", "0.0.0.0", "::"):
        hosts.append(check_host(listen))
    return _ordered(hosts)


def _ordered(hosts: Sequence[str]) -> list[str]:
    """Without repeats, DNS names first (in the order given), then addresses."""
    seen: list[str] = []
    for h in hosts:
        if h not in seen:
            seen.append(h)
    return [h for h in seen if not _is_ip(h)] + [h for h in seen if _is_ip(h)]


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def ensure(broker_folder: str, hall: str, hosts: Sequence[str] | None = None,
           listen: str = "", new_server: bool = False,
           now: datetime.datetime | None = None) -> Issued:
    """The hall CA and the broker's certificate in <broker_folder>/tls, made when missing.
    hosts: what the broker's certificate must name (None: keep an existing certificate's names,
    else default_hosts(listen)). An existing certificate that names other hosts is an error unless
    new_server. Never replaces a CA."""
    f = files(broker_folder)
    now = now or datetime.datetime.now(datetime.UTC)
    wanted = _ordered([check_host(h) for h in hosts]) if hosts else None
    if wanted is not None and not any(not _is_ip(h) for h in wanted):
        raise HcpError("give at least one host name with --tls-host (the terminals check the "
                       "broker's certificate against a name, not an address)")
    os.makedirs(os.path.dirname(f.ca_cert), exist_ok=True)
    new_ca = False
    if os.path.exists(f.ca_cert) or os.path.exists(f.ca_key):
        ca_cert, ca_key = _load_ca(f)
    else:
        ca_key = _new_key()
        ca_cert = _ca_cert(hall, ca_key, now)
        _write_key(f.ca_key, ca_key)
        _write(f.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM))
        new_ca = True
    if os.path.exists(f.cert) and not new_server and not new_ca:
        have = cert_hosts(f.cert)
        if wanted is not None and sorted(wanted) != sorted(have):
            raise HcpError("%s names %s, not %s: add --new-server-cert to issue a new one (the "
                           "hall CA stays, the terminals keep working)"
                           % (f.cert, ", ".join(have), ", ".join(wanted)))
        if not os.path.exists(f.key):
            raise HcpError("%s is missing (its certificate %s is there): add --new-server-cert"
                           % (f.key, f.cert))
        _check_signed(f.cert, ca_cert)
        return Issued(f, False, False, have)
    names = wanted or default_hosts(listen)
    key = _new_key()
    cert = _server_cert(hall, names, key, ca_cert, ca_key, now)
    _write_key(f.key, key)
    _write(f.cert, cert.public_bytes(serialization.Encoding.PEM))
    return Issued(f, new_ca, True, names)


def cert_hosts(cert_path: str) -> list[str]:
    """The DNS names, then the IP addresses, a certificate is for."""
    cert = _read_cert(cert_path)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return ([str(n) for n in san.get_values_for_type(x509.DNSName)]
            + [str(a) for a in san.get_values_for_type(x509.IPAddress)])


def server_name(broker_folder: str) -> str:
    """The name terminals check the broker's certificate against: its first DNS name."""
    f = files(broker_folder)
    names = [h for h in cert_hosts(f.cert) if not _is_ip(h)]
    if not names:
        raise HcpError("%s names no host: issue a new one with `hcp broker config --tls "
                       "--tls-host NAME --new-server-cert`" % f.cert)
    return names[0]


def ca_der(broker_folder: str) -> bytes:
    """The hall CA's certificate in DER, as MicroPython's ssl takes it (cadata)."""
    return _read_cert(files(broker_folder).ca_cert).public_bytes(serialization.Encoding.DER)


# ---------------------------------------------------------------------------------- making
def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _years(now: datetime.datetime, n: int) -> datetime.datetime:
    return now + datetime.timedelta(days=365 * n + n // 4)


def _ca_cert(hall: str, key: rsa.RSAPrivateKey, now: datetime.datetime) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "haochaping"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "hall %s CA" % hall)])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOT_BEFORE).not_valid_after(_years(now, CA_YEARS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))


def _server_cert(hall: str, hosts: Sequence[str], key: rsa.RSAPrivateKey,
                 ca_cert: x509.Certificate, ca_key: rsa.RSAPrivateKey,
                 now: datetime.datetime) -> x509.Certificate:
    san: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address(h)) if _is_ip(h) else x509.DNSName(h)
        for h in hosts]
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "haochaping"),
                         x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOT_BEFORE).not_valid_after(_years(now, SERVER_YEARS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=True, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                ca_ski), critical=False)
            .sign(ca_key, hashes.SHA256()))


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)


def _write_key(path: str, key: rsa.RSAPrivateKey) -> None:
    """A private key, 0600 from the moment it exists (never readable by others, not even
    briefly); an existing file is replaced only by the caller's decision."""
    tmp = path + ".new"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.private_bytes(serialization.Encoding.PEM,
                                   serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
    os.chmod(tmp, 0o600)  # O_CREAT's mode is masked by the umask; an old .new kept its own
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------- reading
def _read_cert(path: str) -> x509.Certificate:
    try:
        with open(path, "rb") as fh:
            return x509.load_pem_x509_certificate(fh.read())
    except FileNotFoundError:
        raise HcpError("%s is missing: run `hcp broker config --tls`" % path) from None
    except ValueError as e:
        raise HcpError("%s is not a PEM certificate: %s" % (path, e)) from None


def _load_ca(f: Files) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    for p in (f.ca_cert, f.ca_key):
        if not os.path.exists(p):
            raise HcpError("%s is missing but %s is there: put it back (a new hall CA means "
                           "provisioning every terminal again; to start over on purpose, move "
                           "the folder %s aside)" % (p, f.ca_cert if p == f.ca_key else f.ca_key,
                                                     os.path.dirname(p)))
    cert = _read_cert(f.ca_cert)
    with open(f.ca_key, "rb") as fh:
        try:
            key = serialization.load_pem_private_key(fh.read(), password=None)
        except (ValueError, TypeError) as e:
            raise HcpError("%s is not an unencrypted PEM private key: %s" % (f.ca_key, e)
                           ) from None
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if not isinstance(key, rsa.RSAPrivateKey) or (
            key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki)):
        raise HcpError("%s is not the key of %s" % (f.ca_key, f.ca_cert))
    return cert, key


def _check_signed(cert_path: str, ca: x509.Certificate) -> None:
    cert = _read_cert(cert_path)
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as e:
        raise HcpError("%s is not signed by the hall CA (%s): add --new-server-cert"
                       % (cert_path, type(e).__name__)) from None
