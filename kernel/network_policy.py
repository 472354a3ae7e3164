"""Which addresses an account's backend may point at: the rule against SSRF, pure stdlib.

An account engineer chooses a backend's address; the admin service (its configuration-time TLS
check) and the broker (every origin request) then open connections to it from inside the
operator's network. So a backend configured by an account may not be a loopback, private
(RFC 1918, fc00::/7, CGNAT), link-local (169.254/16, fe80::/10), unspecified, multicast, reserved
or cloud-metadata address, nor a host name that resolves to one, unless the operator lists the
network in ``FANMETER_BACKEND_ALLOWED_NETWORKS`` (comma-separated CIDRs). Metadata endpoints are
refused even inside an allowed network: no origin legitimately lives there.

The pieces, for both callers (billing at configuration, the broker at connect time, after its own
resolution, which is what defeats DNS rebinding):

- ``parse_allowed_networks("127.0.0.0/8, 10.1.0.0/16")`` -> the networks, or ``ValueError``;
- ``host_refusal(text)`` -> why ``text`` is not a host name or IP literal, or None;
- ``refused_address(ip, allowed)`` -> why a connection to ``ip`` is refused, or None;
- ``resolution_refusal(host, allowed, resolve)`` -> the first refused address ``host`` resolves to.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
AllowedNetworks = Sequence[IPNetwork]

METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack, DigitalOcean
        ipaddress.ip_address("169.254.170.2"),  # AWS ECS task metadata
        ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    }
)
MAX_HOST_LENGTH = 253
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_LOCALHOST_NAMES = ("localhost", "localhost.")


def parse_allowed_networks(text: str | Iterable[str]) -> tuple[IPNetwork, ...]:
    """The networks of a comma-separated CIDR list (or an iterable of CIDRs); ``ValueError`` names a bad one.

    Example: ``parse_allowed_networks("127.0.0.0/8, ::1/128")``.
    """
    items = text.split(",") if isinstance(text, str) else text
    networks: list[IPNetwork] = []
    for item in (part.strip() for part in items):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as error:
            raise ValueError(f"{item!r} is not a network in CIDR notation ({error})") from None
    return tuple(networks)


def _category(ip: IPAddress) -> str | None:
    """The class of a non-public address, or None for a globally routable unicast one."""
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_reserved:
        return "a reserved address"
    if ip.is_private:
        return "a private address"
    if not ip.is_global:
        return "not a public address"
    return None


def refused_address(ip: str | IPAddress, allowed: AllowedNetworks = ()) -> str | None:
    """Why a backend of an account may not be reached at ``ip``, or None when it may.

    An IPv4-mapped IPv6 address (``::ffff:127.0.0.1``) is judged as the IPv4 address it carries.
    """
    address = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    category = _category(address)
    if category is None:
        return None
    if address not in METADATA_ADDRESSES and any(address in network for network in allowed):
        return None
    hint = "" if address in METADATA_ADDRESSES else " (an operator may allow it in FANMETER_BACKEND_ALLOWED_NETWORKS)"
    return f"{address} is {category}; backends must be public{hint}"


def ip_literal(host: str) -> IPAddress | None:
    """The IP address ``host`` spells (``[v6]`` brackets allowed), or None for a host name."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        return None


def host_refusal(host: str) -> str | None:
    """Why ``host`` is neither an IP literal nor a DNS host name (RFC 1123 labels), or None.

    A port, path, fragment, query, user info, whitespace or control character is refused:
    ``"127.0.0.1:18480/v1#"`` is not an address.
    """
    if not host:
        return "the host is empty"
    bad = next((c for c in host if ord(c) < 0x20 or ord(c) == 0x7F), None)
    if bad is not None:
        return f"the host contains the control character {bad!r}"
    for char, name in ((" ", "a space"), ("/", "'/'"), ("#", "'#'"), ("?", "'?'"), ("@", "'@'"), ("\\", "'\\'")):
        if char in host:
            return f"the host contains {name}: give a host name or IP address only"
    if ip_literal(host) is not None:
        return None
    if ":" in host:
        return "the host contains ':': give the port separately"
    if not host.isascii():
        return "the host must be ASCII (give an internationalised name in its xn-- form)"
    name = host[:-1] if host.endswith(".") else host
    if len(name) > MAX_HOST_LENGTH:
        return f"the host name is longer than {MAX_HOST_LENGTH} characters"
    labels = name.split(".")
    if not all(_LABEL.match(label) for label in labels):
        return "the host is not a valid host name (letters, digits and '-' in dot-separated labels)"
    if labels[-1].isdigit():
        return "the host looks like an IP address but is not a valid one"
    return None


def is_localhost_name(host: str) -> bool:
    """``localhost`` and names under ``.localhost`` always mean this machine (RFC 6761)."""
    lowered = host.lower().rstrip(".")
    return lowered in _LOCALHOST_NAMES or lowered.endswith(".localhost")


def resolution_refusal(
    host: str, allowed: AllowedNetworks, resolve: Callable[[str], Iterable[str]]
) -> tuple[str | None, list[str]]:
    """Judge every address ``host`` resolves to: the first refusal (or None) and the addresses.

    ``resolve`` returns the host's addresses as strings (an empty result means it did not
    resolve, which this rule cannot judge: the connect-time check decides then).
    """
    literal = ip_literal(host)
    if literal is not None:
        return refused_address(literal, allowed), [str(literal)]
    if is_localhost_name(host):
        loopback = ipaddress.ip_address("127.0.0.1")
        reason = refused_address(loopback, allowed)
        return (f"{host} names this machine: {reason}" if reason else None), [str(loopback)]
    addresses = list(dict.fromkeys(resolve(host)))
    for address in addresses:
        reason = refused_address(address, allowed)
        if reason is not None:
            return f"{host} resolves to {reason}", addresses
    return None, addresses
