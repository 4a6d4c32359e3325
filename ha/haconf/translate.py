"""denali.conf to and from the files it replaces: radvd.conf and mip6d.conf.

This is the one place of haconf that imports radvd (the RA sender's own
parser and rules); ha/config does not, so that radvd may import ha.
Every import is done when a function runs: haconf starts on click and
ha.config.model alone.
"""


def ra_check(text, filename):
    """The RA sender's rules over radvd.conf text (model.validate_text's ra_check).

    Raises radvd.config.RadvdConfError; a build without radvd.config is left
    with denali's own checks, as the daemon then has no RA sender to feed.
    """
    try:
        from radvd.config import parse
    except ImportError:
        return
    parse(text, filename)


def ra_as_radvd_config(cfg):
    """The [ra] part of a DenaliConfig as a radvd.config.Config."""
    from radvd.config import parse
    from ha.config.model import ra_as_radvd_text
    return parse(ra_as_radvd_text(cfg), cfg.path + " [ra]")
