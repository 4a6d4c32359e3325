"""denali's built-in router advertisement sender (RFC 4861 §6.2, RFC 6275 §7).

radvd.config     radvd.conf parser, validator and writer (pure)
radvd.scheduler  when to send which RA (pure: clock and random injected)
radvd.service    the asyncio component: raw ICMPv6 sockets, one per interface
python -m radvd  the stand-alone daemon, radvd's command line

Nothing is imported here: the board has 64 MB, callers import what they run.
"""
