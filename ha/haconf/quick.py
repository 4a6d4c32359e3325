"""The `haconf` console script: the daemon's read-only questions without click.

`haconf status`, `bc`, `bul`, `log` (and their `--json`) only ask denalid over
its console and print the answer. On the 64 MB board, loading click and the
config model for that took most of the command's seconds beside a serving
denalid, so these exact command lines are answered here with the standard
library and the console client; every other command line (and any option,
even --config or -h) goes to the click CLI in ha.haconf.cli, which prints the
same thing for these.
"""

import os
import sys

from ha.haconf.columns import WIDTH, wrap  # noqa: F401

# argv -> the console line; status (not --json) is formatted as cli.status does
QUESTIONS = {
    ("status",): "status json",
    ("status", "--json"): "status json",
    ("bc",): "bc",
    ("bc", "--json"): "bc json",
    ("bul",): "bul",
    ("bul", "--json"): "bul json",
    ("log",): "log",
}


def answer(argv):
    """(text, exit status, to stderr) for a quick command line, or None for the CLI."""
    line = QUESTIONS.get(tuple(argv))
    if line is None:
        return None
    from types import SimpleNamespace
    from ha.haconf import denalid
    from ha.haconf.errors import HaconfError
    conf = os.environ.get("DENALI_CONF") or "/etc/denali/denali.conf"
    try:  # the ports of the config and of the one before it, as staging.Paths names them
        lines = denalid.ask(SimpleNamespace(conf=conf, prev=conf + ".prev"), line)
    except HaconfError as e:
        return "\n".join(wrap(m) for m in e.lines()), e.code, True
    failed = denalid.is_error(lines)
    if argv == ["status"] and lines and not failed:
        import json
        try:
            data = json.loads("\n".join(lines))
        except ValueError:
            data = None
        if isinstance(data, dict):
            text = "\n".join(wrap(f"{k}: {v if not isinstance(v, (dict, list)) else json.dumps(v)}")
                             for k, v in data.items())
            return text, 0, False
    return "\n".join(lines), (1 if failed else 0), False


def main():
    argv = sys.argv[1:]
    done = answer(argv)
    if done is None:
        from ha.haconf.cli import main as cli_main
        return cli_main()
    text, code, to_stderr = done
    stream = sys.stderr if to_stderr else sys.stdout
    if text:
        stream.write(text + "\n")
    stream.flush()
    return code
