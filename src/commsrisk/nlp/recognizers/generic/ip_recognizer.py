r"""IP addresses, boundary-free (found when glued to Chinese or Japanese text).

Presidio's IpRecognizer edges its pattern with \b, which never matches between a CJK character
and a digit. Octets are range-checked in the pattern; a version string (v1.2.3.4) or a longer
dotted number is not an address. Budget: < 1 ms per message.
"""

from __future__ import annotations

from presidio_analyzer import Pattern

from commsrisk.nlp.recognizers.base import CommsriskPatternRecognizer

OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
HEX = r"[0-9A-Fa-f]{1,4}"


class BoundaryFreeIpRecognizer(CommsriskPatternRecognizer):
    """IP_ADDRESS: dotted IPv4 with valid octets, or a full eight-group IPv6 address."""

    ENTITY = "IP_ADDRESS"
    PATTERNS = [
        Pattern("ipv4", r"(?:(?<=IP)|(?<![A-Za-z0-9.]))" + OCTET + r"(?:\." + OCTET + r"){3}(?![0-9]|\.[0-9])", 0.6),
        Pattern("ipv6", r"(?<![0-9A-Za-z:])(?:" + HEX + r":){7}" + HEX + r"(?![0-9A-Za-z:])", 0.6),
    ]
    CONTEXT = ["ip", "address", "server", "host", "vpn"]
