"""Channels: what one cell sends along its path, named "LAYER protocol" ("L4 tcp", "DNS udp"), and the
words a sentence names them by. One table for the scope's words, the diagnosis and the verdict.

>>> channel_of("L4", "tcp"), channel_words("L3 mtu")
('L4 tcp', 'large packets with DF set (MTU)')
>>> [c for c in PATH_CHANNELS if c not in PORT_CHANNELS]
['L3 icmp', 'L3 mtu']
"""

from __future__ import annotations

CHANNEL_WORDS = {
    "L3 icmp": "ICMP (ping)",
    "L4 tcp": "TCP",
    "L4 udp": "UDP",
    "L7 http": "HTTP",
    "L7 https": "HTTPS",
    "L3 mtu": "large packets with DF set (MTU)",
    "L2 arp": "ARP",
    "DNS udp": "DNS over UDP",
    "DNS tcp": "DNS over TCP",
    "DNS resolve": "system-resolver lookups",
    "L4 snat": "the source address seen outside (SNAT)",
    "L3 routes": "the node's routes",
    "L4 conntrack": "the conntrack budget",
}

#: the channels that carry traffic along one subject -> target path, in the order sentences list them:
#: when one of them passes between a subject and a target, the routes and the tunnel deliver
PATH_CHANNELS = ("L3 icmp", "L3 mtu", "L4 tcp", "L4 udp", "L7 http", "L7 https")
#: the path channels sent to one port (a firewall rule or a policy can drop them alone)
PORT_CHANNELS = ("L4 tcp", "L4 udp", "L7 http", "L7 https")
#: the path channels the kit's echo pods answer on (every pod target is measured by these)
POD_CHANNELS = ("L3 icmp", "L3 mtu", "L4 tcp", "L4 udp", "L7 http")


def channel_of(layer: str, protocol: str) -> str:
    """The channel of a cell's layer and protocol: ``channel_of("L7", "http") == "L7 http"``."""
    return f"{layer} {protocol}"


def split_channel(channel: str) -> tuple[str, str]:
    """The layer and protocol of a channel: ``split_channel("L4 udp") == ("L4", "udp")``."""
    layer, _, protocol = channel.partition(" ")
    return layer, protocol


def channel_words(channel: str) -> str:
    """How a sentence names a channel (the channel itself when it has no words)."""
    return CHANNEL_WORDS.get(channel, channel)
