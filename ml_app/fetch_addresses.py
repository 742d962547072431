"""Which addresses the guarded fetcher (``ml_app.fetching``) may connect to: public ones only, unless the install
allows private ones; cloud-metadata, multicast and unspecified addresses never. IPv6 addresses that wrap an IPv4
address (mapped, 6to4, Teredo) are judged by the address inside.
"""

from __future__ import annotations

import ipaddress
import socket

from ml_app.detection.errors import HostNotFound, RefusedAddress

# Addresses that hand out a cloud machine's credentials: never fetched, whatever allow_private says.
CLOUD_METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "169.254.170.23", "100.100.100.200", "fd00:ec2::254", "fd00:ec2::23")
)
SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")
ALWAYS_REFUSED = frozenset({"a cloud metadata address", "an unspecified address", "a multicast address"})


def refusal_reason(address: str, allow_private: bool = False) -> str | None:
    """Why the fetcher will not connect to ``address`` (a few words), or None when it may."""
    ip = _unwrap(ipaddress.ip_address(address.split("%", 1)[0]))
    kinds = (
        (ip in CLOUD_METADATA, "a cloud metadata address"),
        (ip.is_unspecified, "an unspecified address"),
        (ip.is_multicast, "a multicast address"),
        (ip.is_loopback, "a loopback address (this server itself)"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_reserved, "a reserved address"),
        (ip.is_private, "a private network address"),
        (ip.version == 4 and ip in SHARED_ADDRESS_SPACE, "a shared (carrier NAT) address"),
        (not ip.is_global, "an address that is not public"),
    )
    reason = next((name for hit, name in kinds if hit), None)
    if reason is None or (allow_private and reason not in ALWAYS_REFUSED):
        return None
    return reason


def _unwrap(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The IPv4 address inside an IPv4-mapped, 6to4 or Teredo IPv6 address (judged as itself), else ``ip``."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            return embedded
    return ip


def resolve(host: str, port: int, allow_private: bool = False) -> list[str]:
    """The checked addresses of ``host``, in the resolver's order; refused as a whole if any one is refused."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise HostNotFound(f"The host {host} could not be found. Check the link.") from error
    addresses: list[str] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = str(sockaddr[0])
        reason = refusal_reason(address, allow_private)
        if reason:
            raise RefusedAddress(
                f"The link points to {reason} ({address}); links to such addresses are refused for safety.", reason
            )
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise HostNotFound(f"The host {host} could not be found. Check the link.")
    return addresses
