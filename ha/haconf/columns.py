"""The serial console's width, and how haconf folds a long line to it.

A leaf module: the quick path (quick.py, which must not load click) and the
CLI's output (output.py) both fold with it.
"""

WIDTH = 79  # the serial console's 80 columns, less the cursor's


def wrap(text):
    import textwrap  # only when something is long enough to print
    out = []
    for line in text.splitlines() or [""]:
        out.extend(textwrap.wrap(line, WIDTH, subsequent_indent="    ",
                                 break_on_hyphens=False) or [""])
    return "\n".join(out)
