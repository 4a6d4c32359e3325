"""The one error of every configuration reader: what is wrong, and where.

Each reader raises a subclass, so a caller that only wants "the configuration
is bad, say why" catches ``ConfigError`` whichever file it was:

- ``ha.config.model.DenaliConfError``   denali.conf (one line per broken rule)
- ``ha.config.mip6d_conf.Mip6dConfError`` a MIPL/UMIP mip6d.conf
- ``radvd.config.RadvdConfError``       radvd.conf, for the RA sender
- ``ha.daemon.settings.SettingsError``  what denalid was started with

str() is ``file:line: message`` as compilers and radvd print it, ``file:
message`` without a line, the message alone without a file.
"""


class ConfigError(ValueError):
    """A configuration that cannot be used: *message* says what is allowed."""

    def __init__(self, message, path=None, line=None):
        self.message = message
        self.path = path
        self.line = line
        super().__init__(self._text())

    @property
    def filename(self):
        return self.path

    def where(self):
        """'file:line', 'file' or '' (line 0 is kept: 'the file as a whole')."""
        if self.path is None:
            return ""
        return self.path if self.line is None else f"{self.path}:{self.line}"

    def _text(self):
        where = self.where()
        return f"{where}: {self.message}" if where else self.message
