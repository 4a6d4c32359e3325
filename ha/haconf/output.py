"""haconf's output: 79 columns, no colour, no pager (a serial console at 19200).

Long lines wrap with a four-space indent; values print as they are typed in
denali.conf (on/off, infinity); a shell line folds with backslash-newline.
"""

import click

from ha.config.model import INFINITY
from ha.haconf.columns import WIDTH, wrap  # noqa: F401
from ha.haconf.grammar import MASK, is_secret


def say(text=""):
    click.echo(wrap(text))


def warn(text):
    click.echo(wrap("warning: " + text), err=True)


def report(error):
    """A HaconfError on stderr, each of its lines wrapped."""
    for line in error.lines():
        click.echo(wrap(line), err=True)


def fmt(v):
    """A checked value as denali.conf spells it."""
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list):
        return ", ".join(v) if v else "(none)"
    if v is None:
        return "(unset)"
    if v == INFINITY:
        return "infinity"
    return str(v)


def show_tree(values, raw, path, want, depth=0, secrets=False):
    """The checked tree as configobj text, defaults marked; *want* a path prefix.

    [auth] keys print masked unless *secrets* (haconf show --secrets)."""
    for key, v in values.items():
        here = path + [key]
        n = min(len(here), len(want))
        if here[:n] != want[:n]:
            continue
        sub_raw = raw.get(key) if raw is not None and hasattr(
            raw, "get") else None
        if isinstance(v, dict):
            say("    " * depth + "[" * (depth + 1) + key + "]" * (depth + 1))
            show_tree(v, sub_raw, here, want, depth + 1, secrets)
        else:
            mark = "" if raw is not None and key in raw else "  # default"
            # RFC 4285 keys are never shown (haconf get auth.<hoa>.key prints one)
            shown = MASK if is_secret(here) and not secrets else fmt(v)
            say("    " * depth + f"{key} = {shown}{mark}")


def fold_shell_line(line, width=WIDTH):
    """Fold a long shell line with backslash-newline, outside '...' only.

    A backslash-newline is removed by bash, zsh and fish alike, in or out
    of double quotes, so the script means the same once folded.
    """
    out = []
    while len(line) > width:
        cut, quoted = -1, False
        for i, ch in enumerate(line[:width - 2]):
            if ch == "'":
                quoted = not quoted
            elif ch == " " and not quoted and line[:i].strip():
                cut = i
        if cut <= 0:
            break
        out.append(line[:cut] + " \\")
        line = "        " + line[cut + 1:]
    out.append(line)
    return "\n".join(out)
