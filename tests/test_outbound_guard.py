"""Webhooks reach public addresses only: the policy, the check at save and the check at connect.

Receivers listen on loopback, refused by default; ``WEBHOOK_ALLOWED_NETWORKS`` lets a test allow
one of them. A listening socket nobody accepts on counts the connections that reached it.
"""

import ipaddress
import socket

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given
from hypothesis import strategies as st

from container_manager.engine import delivery as delivery_step
from container_manager.models import ContainerJob
from container_manager.models.webhooks import WebhookDelivery, WebhookEndpoint
from container_manager.net import addresses, outbound
from tests.test_webhooks import Receiver

POLICY = "webhooks may only reach public addresses (see WEBHOOK_ALLOWED_NETWORKS)"
PUBLIC = "93.184.216.34"


@pytest.fixture
def allow(settings, recording):
    """``allow(*cidrs)`` sets ``WEBHOOK_ALLOWED_NETWORKS`` (none: the default, public only)."""

    def set_networks(*networks):
        settings.CONTAINER_MANAGER = {
            **settings.CONTAINER_MANAGER,
            "WEBHOOK_BACKOFF_BASE": 0.0,
            "WEBHOOK_TIMEOUT_SECONDS": 5.0,
            "WEBHOOK_ALLOWED_NETWORKS": list(networks),
        }

    set_networks()
    return set_networks


@pytest.fixture
def listener():
    """A socket listening on 127.0.0.1 that never accepts: ``connections()`` counts arrivals."""
    sock = socket.create_server(("127.0.0.1", 0))
    sock.setblocking(False)
    yield sock
    sock.close()


def connections(sock):
    """Connections waiting on ``sock`` (a connect to loopback completes before it returns)."""
    count = 0
    while True:
        try:
            sock.accept()[0].close()
        except BlockingIOError:
            return count
        count += 1


@pytest.fixture
def resolve(monkeypatch):
    """``resolve(name, (ip, port), ..., then=[...])``: DNS answers for ``name``.

    The first lookup answers the addresses given, later ones ``then`` (a name rebound), or
    the same again; no address: the name does not resolve. Other names resolve as usual.
    """
    answers = {}
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in answers:
            return real(host, port, *args, **kwargs)
        found, then = answers[host]
        answers[host] = (then, then)
        if not found:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [_info(ip, p) for ip, p in found]

    def set_answers(name, *found, then=None):
        answers[name] = (list(found), list(found) if then is None else then)

    monkeypatch.setattr(outbound.socket, "getaddrinfo", getaddrinfo)
    return set_answers


def _info(ip, port):
    if ":" in ip:
        return (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (ip, port, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))


def a_delivery(url, mock_host):
    """A pending delivery to ``url`` for a new job (the job runs no step)."""
    endpoint = WebhookEndpoint.objects.create(url=url, events=["job.completed"])
    job = ContainerJob.objects.create_job(image="x", docker_host=mock_host)
    return WebhookDelivery.objects.create(
        endpoint=endpoint, job=job, event="job.completed", payload={"job": {"id": str(job.pk)}}
    )


# -- at connect time ------------------------------------------------------------


@pytest.mark.django_db
def test_a_loopback_receiver_allowed_by_the_setting_gets_the_delivery(allow, mock_host):
    allow("127.0.0.0/8")
    receiver = Receiver()
    try:
        delivery = a_delivery(receiver.url, mock_host)
        assert delivery_step.notify(delivery.pk) == "delivered"
        assert [path for path, _, _ in receiver.requests] == ["/hook"]
    finally:
        receiver.close()


@pytest.mark.django_db
def test_by_default_a_loopback_receiver_gets_no_connection_and_no_retry(allow, listener, mock_host):
    port = listener.getsockname()[1]
    delivery = a_delivery(f"http://127.0.0.1:{port}/hook", mock_host)
    assert delivery_step.notify(delivery.pk) == "failed"
    assert connections(listener) == 0
    row = WebhookDelivery.objects.get(pk=delivery.pk)
    assert (row.state, row.attempts, row.status_code, row.next_attempt_at) == (
        "failed", 1, None, None
    )  # fmt: skip
    assert row.error == (
        f"RefusedAddress: 127.0.0.1 is a loopback address; {POLICY}; no connection was made"
    )
    socket.create_connection(("127.0.0.1", port)).close()
    assert connections(listener) == 1  # the count does see a connection


@pytest.mark.django_db
def test_a_name_resolving_to_a_refused_address_is_not_connected_to(
    allow, listener, resolve, mock_host
):
    resolve("hooks.example", ("127.0.0.1", listener.getsockname()[1]))
    delivery = a_delivery("http://hooks.example/hook", mock_host)
    assert delivery_step.notify(delivery.pk) == "failed"
    assert connections(listener) == 0
    error = WebhookDelivery.objects.get(pk=delivery.pk).error
    assert "'hooks.example' resolves only to refused addresses (a loopback address)" in error
    assert "127.0.0.1" not in error  # the addresses a name resolves to are never told


@pytest.mark.django_db
def test_only_the_allowed_address_of_a_name_is_connected_to(allow, listener, resolve, mock_host):
    allow("127.0.0.2/32")
    allowed = Receiver(host="127.0.0.2")
    try:
        refused = ("127.0.0.1", listener.getsockname()[1])
        resolve("hooks.example", refused, ("127.0.0.2", allowed.port))
        delivery = a_delivery("http://hooks.example/hook", mock_host)
        assert delivery_step.notify(delivery.pk) == "delivered"
        assert connections(listener) == 0 and len(allowed.requests) == 1
        assert allowed.requests[0][1]["Host"] == "hooks.example"  # the name, not the address
    finally:
        allowed.close()


@pytest.mark.django_db
def test_a_redirect_hop_is_checked_again(allow, listener, resolve, mock_host):
    """The name answers an allowed address, then (rebound) a refused one for the same-host hop."""
    allow("127.0.0.2/32")
    allowed = Receiver(host="127.0.0.2")
    try:
        allowed.replies.put((307, {"Location": "/moved"}))
        rebound = [("127.0.0.1", listener.getsockname()[1])]
        resolve("hooks.example", ("127.0.0.2", allowed.port), then=rebound)
        delivery = a_delivery(f"http://hooks.example:{allowed.port}/hook", mock_host)
        assert delivery_step.notify(delivery.pk) == "failed"
        assert [path for path, _, _ in allowed.requests] == ["/hook"]
        assert connections(listener) == 0
        assert "RefusedAddress" in WebhookDelivery.objects.get(pk=delivery.pk).error
    finally:
        allowed.close()


def test_an_ipv6_loopback_answer_is_refused_before_any_socket(settings, resolve, monkeypatch):
    settings.CONTAINER_MANAGER = {}
    resolve("six.example", ("::1", 9), ("::ffff:127.0.0.1", 9))
    monkeypatch.setattr(outbound.socket, "socket", _no_socket)
    with pytest.raises(addresses.RefusedAddress, match="resolves only to refused"):
        outbound.post("http://six.example/", b"{}", {}, outbound.Deadline(5))


def _no_socket(*args):
    raise AssertionError("a socket was made for a refused address")


# -- at save --------------------------------------------------------------------

SPELLINGS = [
    ("http://127.0.0.1/h", "127.0.0.1 is a loopback address"),
    ("http://2130706433/h", "2130706433 (127.0.0.1) is a loopback address"),
    ("http://0x7f000001/h", "0x7f000001 (127.0.0.1) is a loopback address"),
    ("http://0x7f.0.0.1/h", "0x7f.0.0.1 (127.0.0.1) is a loopback address"),
    ("http://0177.0.0.1/h", "0177.0.0.1 (127.0.0.1) is a loopback address"),
    ("http://127.1/h", "127.1 (127.0.0.1) is a loopback address"),
    ("http://[::1]/h", "::1 is a loopback address"),
    ("http://[::ffff:127.0.0.1]/h", "::ffff:127.0.0.1 is an IPv4-mapped address of 127.0.0.1"),
    ("http://[0:0:0:0:0:ffff:7f00:1]/h", "0:0:0:0:0:ffff:7f00:1 is an IPv4-mapped address"),
    ("http://0.0.0.0/h", "0.0.0.0 is an unspecified address"),
    ("http://[::]/h", ":: is an unspecified address"),
    ("http://169.254.169.254/latest", "169.254.169.254 is a link-local address"),
    ("http://10.0.0.1/h", "10.0.0.1 is a private address"),
    ("http://192.168.1.20:8080/h", "192.168.1.20 is a private address"),
    ("http://[fd00::1]/h", "fd00::1 is a unique-local address"),
    ("http://localhost:8000/h", "localhost is an internal host name"),
    ("http://api.localhost/h", "api.localhost is an internal host name"),
    ("http://metadata/computeMetadata", "metadata is an internal host name"),
    ("http://metadata.google.internal/h", "metadata.google.internal is an internal host name"),
    ("https://db.internal/h", "db.internal is an internal host name"),
]


@pytest.mark.parametrize(("url", "said"), SPELLINGS, ids=[u for u, _ in SPELLINGS])
def test_every_spelling_of_an_inside_address_is_refused_at_save(url, said, settings):
    settings.CONTAINER_MANAGER = {}
    with pytest.raises(ValidationError) as caught:
        WebhookEndpoint(url=url).full_clean()
    assert f"url: {said}" in " ".join(caught.value.message_dict["url"])
    assert POLICY in caught.value.message_dict["url"][-1]


def test_public_urls_and_names_that_do_not_resolve_are_accepted(settings, resolve):
    settings.CONTAINER_MANAGER = {}
    resolve("example.com", (PUBLIC, 443))
    resolve("nowhere.example")  # resolves to nothing: the connect-time check guards it
    for url in ("https://example.com/hook", f"http://{PUBLIC}/", "https://nowhere.example/h"):
        WebhookEndpoint(url=url).full_clean()


def test_a_name_resolving_inside_is_refused_at_save_without_telling_the_address(settings, resolve):
    settings.CONTAINER_MANAGER = {}
    resolve("intranet.example", (PUBLIC, 443), ("10.1.2.3", 443))
    with pytest.raises(ValidationError) as caught:
        WebhookEndpoint(url="https://intranet.example/h").full_clean()
    [message] = caught.value.message_dict["url"]
    assert message == f"url: intranet.example resolves to a private address; {POLICY}"


def test_the_allowed_networks_apply_at_save(settings, resolve):
    settings.CONTAINER_MANAGER = {"WEBHOOK_ALLOWED_NETWORKS": ["127.0.0.0/8", "10.20.0.0/16"]}
    resolve("localhost", ("127.0.0.1", 80))
    resolve("hooks.internal", ("10.20.0.5", 80))
    for url in ("http://127.0.0.1:8080/", "http://localhost/", "http://hooks.internal/h"):
        WebhookEndpoint(url=url).full_clean()
    with pytest.raises(ValidationError):
        WebhookEndpoint(url="http://10.30.0.1/").full_clean()
    resolve("metadata.google.internal", ("169.254.169.254", 80))
    with pytest.raises(ValidationError, match="internal host name"):
        WebhookEndpoint(url="http://metadata.google.internal/").full_clean()


# -- the policy -----------------------------------------------------------------

TABLE = [
    ("8.8.8.8", None),
    ("93.184.216.34", None),
    ("2606:4700:4700::1111", None),
    ("::ffff:8.8.8.8", None),
    ("64:ff9b::808:808", None),
    ("2002:808:808::1", None),
    ("127.0.0.1", "a loopback address"),
    ("127.255.255.254", "a loopback address"),
    ("::1", "a loopback address"),
    ("169.254.169.254", "a link-local address"),
    ("fe80::1%eth0", "a link-local address"),
    ("10.0.0.1", "a private address"),
    ("172.16.0.1", "a private address"),
    ("172.31.255.255", "a private address"),
    ("172.32.0.1", None),
    ("192.168.0.1", "a private address"),
    ("100.64.0.1", "a shared (carrier-grade NAT) address"),
    ("fd00::1", "a unique-local address"),
    ("fc00::1", "a unique-local address"),
    ("224.0.0.1", "a multicast address"),
    ("ff02::1", "a multicast address"),
    ("0.0.0.0", "an unspecified address"),
    ("::", "an unspecified address"),
    ("255.255.255.255", "a reserved address"),
    ("240.0.0.1", "a reserved address"),
    ("192.0.2.1", "a documentation address"),
    ("2001:db8::1", "a documentation address"),
    ("198.18.0.1", "a benchmarking address"),
    ("fec0::1", "a site-local address"),
    ("::8.8.8.8", "a reserved address"),  # IPv4-compatible, deprecated
    ("::ffff:127.0.0.1", "an IPv4-mapped address of 127.0.0.1, a loopback address"),
    ("::ffff:0:a00:1", "an IPv4-translated address of 10.0.0.1, a private address"),
    ("::7f00:1", "an IPv4-compatible address of 127.0.0.1, a loopback address"),
    ("2002:a9fe:a9fe::", "a 6to4 address of 169.254.169.254, a link-local address"),
    ("64:ff9b::a00:1", "a NAT64 address of 10.0.0.1, a private address"),
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "a Teredo address of 127.0.0.1, a loopback address"),
]


@pytest.mark.parametrize(("address", "reason"), TABLE, ids=[a for a, _ in TABLE])
def test_policy_table(address, reason):
    assert addresses.refusal(address) == reason


@given(st.integers(0, 2**32 - 1))
def test_ipv6_forms_carrying_ipv4_are_judged_by_the_address_they_carry(value):
    v4 = ipaddress.IPv4Address(value)
    refused = addresses.refusal(v4) is not None
    for carrier in (0xFFFF << 32, 0x64FF9B << 96):  # IPv4-mapped, NAT64
        assert (addresses.refusal(ipaddress.IPv6Address(carrier | value)) is not None) == refused
    sixtofour = ipaddress.IPv6Address((0x2002 << 112) | (value << 80) | 1)
    assert (addresses.refusal(sixtofour) is not None) == refused


@given(st.integers(0, 2**32 - 1), st.sampled_from(["dec", "hex", "oct", "int", "short"]))
def test_every_spelling_a_resolver_reads_is_read_the_same(value, form):
    parts = list(ipaddress.IPv4Address(value).packed)
    spelled = {
        "dec": ".".join(str(p) for p in parts),
        "hex": ".".join(hex(p) for p in parts),
        "oct": ".".join(f"0{p:o}" for p in parts),
        "int": str(value),
        "short": f"{parts[0]}.{int.from_bytes(bytes(parts[1:]), 'big')}",
    }[form]
    assert addresses.literal_address(spelled) == ipaddress.IPv4Address(value)
    assert socket.inet_aton(spelled) == bytes(parts)  # as the C library reads it


def test_allowed_networks_open_what_the_policy_refuses():
    allowed = [ipaddress.ip_network("10.20.0.0/16"), ipaddress.ip_network("::1/128")]
    assert addresses.refusal("10.20.3.4", allowed) is None
    assert addresses.refusal("::ffff:10.20.3.4", allowed) is None
    assert addresses.refusal("::1", allowed) is None
    assert addresses.refusal("10.21.0.1", allowed) == "a private address"
    assert addresses.refusal("127.0.0.1", allowed) == "a loopback address"
