#!/usr/bin/env python3
"""Checks that no C function in the product code is longer than the house
limit (120 lines, from the line naming the function to its closing brace).

Usage: tests/check_function_length.py [--max N] [DIR or FILE...]
       (default: core lib plugins under the repository root)

Prints each function over the limit as "FILE:LINE: NAME is N lines" and
exits 1 when there is one. A simple scanner, not a C parser: comments,
string and character literals and preprocessor lines are blanked out, then
a function is a '{' at file scope that follows a ')'. Initializers
('= {'), struct, union and enum bodies are not functions; macros are not
looked into.
"""

import os
import re
import sys

LIMIT = 120


def blank(text):
    """The text with comments, literals and preprocessor lines replaced by
    spaces, newlines kept so that line numbers stay."""
    out = []
    i, n = 0, len(text)
    line_start = True
    while i < n:
        c = text[i]
        if line_start and c == "#":
            # A directive, with its backslash continuations.
            while i < n and text[i] != "\n":
                if text[i] == "\\" and i + 1 < n and text[i + 1] == "\n":
                    out.append(" \n")
                    i += 2
                    continue
                out.append(" ")
                i += 1
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append(re.sub(r"[^\n]", " ", text[i:end]))
            i = end
            continue
        if text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            out.append(" " * (end - i))
            i = end
            continue
        if c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(c + re.sub(r"[^\n]", " ", text[i + 1:j - 1]) + c)
            i = j
            continue
        out.append(c)
        if c == "\n":
            line_start = True
        elif not c.isspace():
            line_start = False
        i += 1
    return "".join(out)


def matching_open_paren(code, close):
    depth = 0
    for k in range(close, -1, -1):
        if code[k] == ")":
            depth += 1
        elif code[k] == "(":
            depth -= 1
            if depth == 0:
                return k
    return -1


def functions(code):
    """(name, first line, last line) of each function definition."""
    depth = 0
    found = []
    i = 0
    while i < len(code):
        c = code[i]
        if c == "{" and depth == 0:
            before = code[:i].rstrip()
            if before.endswith(")"):
                open_paren = matching_open_paren(code, len(before) - 1)
                m = re.search(r"([A-Za-z_]\w*)\s*$", code[:open_paren])
                if m:
                    end = matching_close(code, i)
                    found.append((m.group(1),
                                  code.count("\n", 0, m.start(1)) + 1,
                                  code.count("\n", 0, end) + 1))
                    i = end + 1
                    continue
            depth += 1
        elif c == "{":
            depth += 1
        elif c == "}":
            depth = max(depth - 1, 0)
        i += 1
    return found


def matching_close(code, open_brace):
    depth = 0
    for k in range(open_brace, len(code)):
        if code[k] == "{":
            depth += 1
        elif code[k] == "}":
            depth -= 1
            if depth == 0:
                return k
    return len(code) - 1


def c_files(paths):
    """The .c files named, or found under the directories named."""
    for top in paths:
        if os.path.isfile(top):
            yield top
            continue
        for dirpath, dirnames, names in os.walk(top):
            dirnames.sort()
            for name in sorted(names):
                if name.endswith(".c"):
                    yield os.path.join(dirpath, name)


def main(argv):
    limit = LIMIT
    if len(argv) >= 2 and argv[0] == "--max":
        limit = int(argv[1])
        argv = argv[2:]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    dirs = argv or [os.path.join(root, d) for d in ("core", "lib", "plugins")]
    too_long = 0
    checked = 0
    for path in c_files(dirs):
        with open(path, encoding="utf-8", errors="replace") as f:
            code = blank(f.read())
        for fn, first, last in functions(code):
            checked += 1
            length = last - first + 1
            if length > limit:
                too_long += 1
                print("%s:%d: %s is %d lines (limit %d)" % (
                    os.path.relpath(path, root), first, fn, length, limit))
    print("%d functions checked, %d over %d lines" % (checked, too_long,
                                                      limit))
    return 1 if too_long or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
