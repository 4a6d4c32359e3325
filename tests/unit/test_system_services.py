"""[system] on the board: what denalid runs for ntp_servers and syslog_host."""

from ha.daemon import system as S


def test_ntpd_conf_resolves_names_and_takes_addresses_as_they_are():
    text = S.ntpd_conf(("pool.ntp.org", "2001:db8::123", "192.0.2.1"))
    assert "servers pool.ntp.org\n" in text
    assert "server 2001:db8::123\n" in text and "server 192.0.2.1\n" in text
    assert S.ntpd_argv("/run/denali/system/ntpd.conf") == [
        "ntpd", "-d", "-f", "/run/denali/system/ntpd.conf"]


def test_syslogd_keeps_the_local_ring_and_adds_the_remote_host():
    assert S.syslogd_argv("[2001:db8::5]:514") == [
        "syslogd", "-n", "-C64", "-L", "-R", "[2001:db8::5]:514"]
    assert S.syslogd_argv(None) == ["syslogd", "-n", "-C64"]


def test_nothing_runs_for_an_empty_system_section():
    from ha.config.model import DEFAULT_TEXT, validate_text
    from ha.daemon.service import _wants_system

    class Settings:
        system = validate_text(DEFAULT_TEXT, "d.conf").system
    assert not _wants_system(Settings)
    Settings.system = validate_text(DEFAULT_TEXT + "[system]\n    ntp_servers = pool.ntp.org\n",
                                    "d.conf").system
    assert _wants_system(Settings)
