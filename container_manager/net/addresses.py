"""Which addresses outbound requests may reach: public ones, and networks an operator allows.

The same policy is checked when a webhook URL is saved and on each address a connection tries.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from container_manager.conf import setting

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Host names refused at save unless they resolve into ``WEBHOOK_ALLOWED_NETWORKS``:
#: exact names, then suffixes (``*.internal`` is ``.internal``).
INTERNAL_NAMES = frozenset({"localhost", "metadata", "instance-data", "metadata.google.internal"})
INTERNAL_SUFFIXES = (".localhost", ".internal", ".local", ".localdomain", ".home.arpa")
#: The end of every refusal message: what is allowed and how to change it.
POLICY = "webhooks may only reach public addresses (see WEBHOOK_ALLOWED_NETWORKS)"


class RefusedAddress(OSError):
    """No connection was made: the host's addresses are not public nor in an allowed network.

    A refusal is final for the URL (``engine.delivery`` does not retry it): the same name
    gives the same answer until the endpoint or the setting changes.
    """


def refusal(address: str | IPAddress, allowed: Iterable[IPNetwork] = ()) -> str | None:
    """Why ``address`` may not be reached (``"a loopback address"``), or None when it may.

    IPv6 forms that carry an IPv4 address (mapped, compatible, 6to4, NAT64, Teredo) are
    judged by the address they carry. An address inside ``allowed`` may always be reached.

    >>> refusal("127.0.0.1"), refusal("93.184.216.34")
    ('a loopback address', None)
    >>> refusal("::ffff:169.254.169.254")
    'an IPv4-mapped address of 169.254.169.254, a link-local address'
    >>> refusal("10.1.2.3", [ipaddress.ip_network("10.0.0.0/8")]) is None
    True
    """
    found = ipaddress.ip_address(address) if isinstance(address, str) else address
    allowed = list(allowed)
    if _inside(found, allowed):
        return None
    forms = _embedded(found) if isinstance(found, ipaddress.IPv6Address) else []
    for form, inner in forms:
        if _inside(inner, allowed):
            return None
        reason = refusal(inner)
        if reason:
            return f"{form} of {inner}, {reason}"
    if forms and forms[0][0] in _CARRIERS:
        return None  # a public IPv4 address reached through IPv6
    return _rule(found)


def allowed_networks() -> list[IPNetwork]:
    """``WEBHOOK_ALLOWED_NETWORKS`` as networks; ``ValueError`` naming the setting if one is bad."""
    networks = []
    for value in setting("WEBHOOK_ALLOWED_NETWORKS"):
        try:
            networks.append(ipaddress.ip_network(value))
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"WEBHOOK_ALLOWED_NETWORKS: {value!r} is not a network: {exc}"
            ) from exc
    return networks


def literal_address(host: str) -> IPAddress | None:
    """The address ``host`` spells, in any form a resolver reads, or None for a name.

    IPv4 as a resolver reads it (``inet_aton``): one to four parts, each decimal, ``0x``
    hex or ``0``-led octal, the last one filling the remaining bytes; IPv6 with or without
    brackets and a zone.

    >>> [str(literal_address(h)) for h in ("2130706433", "0x7f.0.0.1", "0177.0.0.1", "127.1")]
    ['127.0.0.1', '127.0.0.1', '127.0.0.1', '127.0.0.1']
    >>> literal_address("[::1]"), literal_address("example.com")
    (IPv6Address('::1'), None)
    """
    host = host.strip().rstrip(".")
    try:
        return ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
    except ValueError:
        return _inet_aton(host)


def url_refusal(url: str) -> str | None:
    """Why a webhook ``url`` may not be saved (a message naming the rule), or None.

    Refused: an address literal the policy refuses, in any spelling; a well-known internal
    name (``INTERNAL_NAMES``, ``INTERNAL_SUFFIXES``); a name that resolves to a refused
    address. A name that does not resolve now is accepted: the check at connect time is
    the guard, this one gives an early answer.

    >>> url_refusal("http://0x7f000001/")
    '0x7f000001 (127.0.0.1) is a loopback address; webhooks may only reach public addresses \
(see WEBHOOK_ALLOWED_NETWORKS)'
    >>> url_refusal("https://93.184.216.34/hook") is None
    True
    """
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None  # the URL validator names what is wrong with it
    if not host:
        return None
    allowed = allowed_networks()
    literal = literal_address(host)
    if literal is not None:
        reason = refusal(literal, allowed)
        plain = host == str(literal) or literal.version == 6  # IPv6 says what it carries
        spelled = host if plain else f"{host} ({literal})"
        return f"{spelled} is {reason}; {POLICY}" if reason else None
    return _name_refusal(host.rstrip("."), port or 443, allowed)


def message(host: str, reason: str) -> str:
    """The refusal of ``host`` at connect time; a name's addresses are not told (no DNS oracle).

    >>> message("hooks.example", "a private address")
    "'hooks.example' resolves only to refused addresses (a private address); \
webhooks may only reach public addresses (see WEBHOOK_ALLOWED_NETWORKS); no connection was made"
    """
    if literal_address(host) is not None:
        return f"{host} is {reason}; {POLICY}; no connection was made"
    return (
        f"{host!r} resolves only to refused addresses ({reason}); {POLICY}; no connection was made"
    )


# -- helpers --------------------------------------------------------------------

_V4_RULES = [
    ("0.0.0.0/8", "an unspecified address"),
    ("10.0.0.0/8", "a private address"),
    ("100.64.0.0/10", "a shared (carrier-grade NAT) address"),
    ("127.0.0.0/8", "a loopback address"),
    ("169.254.0.0/16", "a link-local address"),
    ("172.16.0.0/12", "a private address"),
    ("192.0.0.0/24", "a reserved address"),
    ("192.0.2.0/24", "a documentation address"),
    ("192.88.99.0/24", "a reserved address"),
    ("192.168.0.0/16", "a private address"),
    ("198.18.0.0/15", "a benchmarking address"),
    ("198.51.100.0/24", "a documentation address"),
    ("203.0.113.0/24", "a documentation address"),
    ("224.0.0.0/4", "a multicast address"),
    ("240.0.0.0/4", "a reserved address"),
]
# After the forms that carry IPv4 (``_embedded``); anything outside 2000::/3 is refused too.
_V6_RULES = [
    ("::/128", "an unspecified address"),
    ("::1/128", "a loopback address"),
    ("64:ff9b:1::/48", "a reserved address"),
    ("100::/64", "a reserved address"),
    ("2001:2::/48", "a benchmarking address"),
    ("2001::/23", "a reserved address"),
    ("2001:db8::/32", "a documentation address"),
    ("3fff::/20", "a documentation address"),
    ("fc00::/7", "a unique-local address"),
    ("fe80::/10", "a link-local address"),
    ("fec0::/10", "a site-local address"),
    ("ff00::/8", "a multicast address"),
]
_RULES = [(ipaddress.ip_network(net), reason) for net, reason in _V4_RULES + _V6_RULES]
_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")
_COMPATIBLE = ipaddress.ip_network("::/96")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")
#: Forms through which a public IPv4 address is reached; the deprecated others are refused.
_CARRIERS = ("an IPv4-mapped address", "a NAT64 address", "an IPv4-translated address")


def _rule(address: IPAddress) -> str | None:
    for network, reason in _RULES:
        if address.version == network.version and address in network:
            return reason
    if isinstance(address, ipaddress.IPv6Address) and address not in _GLOBAL_UNICAST:
        return "a reserved address"
    return None


def _embedded(address: ipaddress.IPv6Address) -> list[tuple[str, ipaddress.IPv4Address]]:
    """The IPv4 addresses an IPv6 address carries, each with the name of its form."""
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.ipv4_mapped is not None:
        return [("an IPv4-mapped address", address.ipv4_mapped)]
    if address.sixtofour is not None:
        return [("a 6to4 address", address.sixtofour)]
    if address.teredo is not None:
        server, client = address.teredo
        return [("a Teredo address", client), ("a Teredo address", server)]
    if address in _NAT64:
        return [("a NAT64 address", low32)]
    if address in _TRANSLATED:
        return [("an IPv4-translated address", low32)]
    if address in _COMPATIBLE and int(address) > 1:
        return [("an IPv4-compatible address", low32)]
    return []


def _inside(address: IPAddress, networks: list[IPNetwork]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def _inet_aton(host: str) -> ipaddress.IPv4Address | None:
    parts = host.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    numbers = [_number(part) for part in parts]
    if any(n is None for n in numbers):
        return None
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(parts)):
        return None
    value = last
    for index, n in enumerate(head):
        value += n << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def _number(part: str) -> int | None:
    try:
        if part[:2].lower() == "0x":
            return int(part[2:] or "0", 16)
        if len(part) > 1 and part.startswith("0"):
            return int(part[1:], 8)
        return int(part, 10) if part.isdigit() else None
    except ValueError:
        return None


def _name_refusal(host: str, port: int, allowed: list[IPNetwork]) -> str | None:
    name = host.lower()
    internal = name in INTERNAL_NAMES or name.endswith(INTERNAL_SUFFIXES)
    if internal and not allowed:
        return f"{host} is an internal host name; {POLICY}"
    try:
        found = {info[4][0] for info in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)}
    except (OSError, UnicodeError):
        found = set()
    if internal and (not found or any(refusal(a, allowed) is not None for a in found)):
        return f"{host} is an internal host name; {POLICY}"
    reasons = sorted({reason for a in found if (reason := refusal(a, allowed))})
    if reasons:
        return f"{host} resolves to {reasons[0]}; {POLICY}"
    return None
