"""The manual pages the build wrote (man/meson.build) against what the
binary itself says: every flag of `pgspout --help` and of `pgspout backfill
--help` in pgspout(1), every config key of `--help` and every sink option of
`--list-sinks` (under its sink's heading) in pgspout.conf(5); and groff
formats both without a warning.

Usage: check_man_pages.py PGSPOUT COMMAND_PAGE CONFIG_PAGE SINK_DIR..."""

import re
import subprocess
import sys


def run(argv):
    r = subprocess.run(argv, capture_output=True, text=True)
    assert r.returncode == 0, "%s failed: %s" % (argv, r.stderr)
    return r.stdout


def plain(page):
    """The page's words without roff's fonts and escapes."""
    with open(page) as f:
        text = f.read()
    text = re.sub(r"\\f[BIRP]", "", text)
    return text.replace("\\-", "-").replace("\\e", "\\").replace("\\&", "")


def flags(help_text):
    usage_end = help_text.index("\nOptions:")
    options = help_text[usage_end:].split("\nConfig file keys")[0]
    return set(re.findall(r"^\s+(?:-\w, )?(--[a-z-]+)", options, re.M))


def config_keys(help_text):
    part = help_text.split("Config file keys")[1].split("\n\n")[0]
    part = part.split("\n", 1)[1]
    return set(re.findall(r"([a-z_]+)(?: \(--[a-z-]+\))?,?", part))


def sink_options(listing):
    """{sink: [option names]} from --list-sinks."""
    sinks, current = {}, None
    for line in listing.splitlines():
        if not line.startswith(" "):
            current = line.split()[0]
            sinks[current] = []
        elif current:
            sinks[current].append(line.split()[0].replace("<name>", "name"))
    return sinks


def groff_warnings(page):
    """What groff says of the page (nothing for a clean one)."""
    r = subprocess.run(["groff", "-man", "-ww", "-z", "-Tutf8", page],
                       capture_output=True, text=True)
    return [] if r.returncode == 0 and not r.stderr else \
        ["groff on %s: %s" % (page, r.stderr.strip())]


def main():
    pgspout, command_page, config_page = sys.argv[1:4]
    dirs = []
    for d in sys.argv[4:]:
        dirs += ["--plugin-dir", d]
    help_text = run([pgspout, "--help"] + dirs)
    backfill_help = run([pgspout, "backfill", "--help"])
    listing = run([pgspout, "--list-sinks"] + dirs)
    command, config = plain(command_page), plain(config_page)
    failures = []
    for flag in sorted(flags(help_text) | flags(backfill_help)):
        if not re.search(r"(^|[ ,])%s\b" % re.escape(flag), command, re.M):
            failures.append("pgspout(1) lacks " + flag)
    keys = config_keys(help_text)
    assert {"connection", "slot", "sinks"} <= keys, keys
    for key in sorted(keys):
        if not re.search(r"^%s \(" % re.escape(key), config, re.M):
            failures.append("pgspout.conf(5) lacks the key " + key)
    sinks = sink_options(listing)
    assert "file" in sinks and sinks["file"], listing
    sections = re.split(r"^\.SS ", config, flags=re.M)[1:]
    by_sink = {s.split("\n", 1)[0]: s for s in sections}
    for sink, names in sorted(sinks.items()):
        section = by_sink.get(sink)
        if section is None:
            failures.append("pgspout.conf(5) lacks the sink " + sink)
            continue
        for name in names:
            if not re.search(r"^%s \(" % re.escape(name), section, re.M):
                failures.append("pgspout.conf(5) lacks %s's option %s"
                                % (sink, name))
    failures += groff_warnings(command_page) + groff_warnings(config_page)
    for f in failures:
        print(f)
    print("%d passed, %d failed" % (1 if not failures else 0,
                                      1 if failures else 0))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
