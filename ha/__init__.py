"""denali home agent: Mobile IPv6 (RFC 6275) home agent and mobile node.

Nothing is imported here on purpose: the daemon's start-up path imports
only the modules it runs (the board has 64 MB of RAM).
"""

__version__ = "0.1.0"
