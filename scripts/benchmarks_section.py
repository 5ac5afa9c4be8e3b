"""Replaces one "## Title" section of docs/BENCHMARKS.md (or appends it), for the bench
scripts' `--write`: every section is the whole output of one script's run, so a re-run
replaces its own section and leaves the others as they are."""

import re


def replace_section(doc, title, section):
    """Writes `section` (which starts with its "## title" line) in place of the section
    of that title in the file `doc`, or at its end when there is none."""
    text = open(doc).read()
    m = re.search(r"^## " + re.escape(title) + r"\n", text, re.M)
    if m:
        nxt = re.search(r"^## ", text[m.end():], re.M)
        end = m.end() + nxt.start() if nxt else len(text)
        text = text[:m.start()] + section + ("\n" + text[end:] if nxt else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    open(doc, "w").write(text)
