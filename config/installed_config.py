#!/usr/bin/env python3
"""Writes the installed notifd.yaml from config/single-node.yaml (the one
source of truth): every checkout-relative default becomes its installed
path, nothing else changes.  Run by meson at configure time.

Usage: installed_config.py IN OUT VAR=PATH... [--config PATH]

Each VAR is an environment variable the single-node config reads as
${VAR:-./something}; the default after ':-' is replaced by PATH, in the
value and in the header comment that lists it.  A VAR that does not occur
is an error, so the two files cannot drift apart silently.
"""
import re
import sys


def main(argv):
    src, dst, *rest = argv
    config_path = None
    subst = {}
    it = iter(rest)
    for a in it:
        if a == "--config":
            config_path = next(it)
            continue
        var, _, path = a.partition("=")
        subst[var] = path
    with open(src, encoding="utf-8") as f:
        text = f.read()
    for var, path in subst.items():
        pat = re.compile(r"\$\{" + re.escape(var) + r":-([^}]*)\}")
        olds = set(pat.findall(text))
        if not olds:
            sys.exit(f"installed_config.py: ${{{var}:-...}} not found in {src}")
        for old in olds:
            text = text.replace("${%s:-%s}" % (var, old), "${%s:-%s}" % (var, path))
            # The header comment: "#   VAR   what it is   (default OLD)".
            text = re.sub(r"^(#\s+" + re.escape(var) + r"\b.*\(default )" + re.escape(old) + r"\)",
                          lambda m: m.group(1) + path + ")", text, flags=re.M)
    if config_path:
        usage = "#   notifd -c config/single-node.yaml\n"
        if usage not in text:
            sys.exit(f"installed_config.py: usage line not found in {src}")
        text = text.replace(usage, "#   notifd                 (reads %s when -c is not given)\n"
                            "#\n# Generated at build time from config/single-node.yaml with the "
                            "installed paths.\n" % config_path)
    with open(dst, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main(sys.argv[1:])
