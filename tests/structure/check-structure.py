#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The code base's structure rules (README "Layout"), read from the sources:

  1. no cycle between folders: edges come from each library's `#include "kova/X.h"` (the folder
     whose include/kova/ holds X.h) and from its CMake target_link_libraries; checked once with
     every library folder as a node and once with top-level folders as nodes (vmm/qcow2 is vmm);
  2. the REST library (api/) never forks, execs, signals, removes directories or touches
     instance dirs: no fork/exec*/posix_spawn*/system/popen/kill/pidfd_send_signal/rmdir calls and
     no kova_layout_* calls in api/.

Usage: check-structure.py [ROOT]      check the tree at ROOT (default: this checkout)
       check-structure.py --self-test  show that each rule fails on a tree that breaks it
"""
import os
import re
import sys
import tempfile

SKIP = {"tests", "build", ".git", "deploy", "shared"}
FORBIDDEN = re.compile(
    r"\b(fork|vfork|execv|execve|execvp|execvpe|execl|execlp|execle|fexecve|posix_spawn|"
    r"posix_spawnp|system|popen|kill|killpg|pidfd_send_signal|rmdir|kova_layout_\w+)\s*\(")
INCLUDE = re.compile(r'^\s*#\s*include\s+"kova/([\w.]+)"', re.M)


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    return re.sub(r'"(\\.|[^"\\\n])*"', '""', text)


def scan(root):
    """Library folders (relative paths), lib name -> folder, header -> folder, edges."""
    libs, headers, folders = {}, {}, set()
    for d, dirs, files in os.walk(root):
        rel = os.path.relpath(d, root)
        top = rel.split(os.sep)[0]
        if top in SKIP or (top.startswith(".") and rel != "."):
            dirs[:] = []
            continue
        if "CMakeLists.txt" in files and rel != ".":
            text = open(os.path.join(d, "CMakeLists.txt")).read()
            for m in re.finditer(r"add_library\(\s*([\w-]+)", text):
                libs[m.group(1)] = rel
                folders.add(rel)
        if os.path.basename(d) == "kova" and os.path.basename(os.path.dirname(d)) == "include":
            owner = os.path.relpath(os.path.dirname(os.path.dirname(d)), root)
            for f in files:
                headers[f] = owner
    def owner_of(path):
        best = None
        for f in folders:
            if path == f or path.startswith(f + os.sep):
                if best is None or len(f) > len(best):
                    best = f
        return best
    edges = {}
    def edge(a, b, why):
        if a and b and a != b:
            edges.setdefault((a, b), why)
    for f in folders:
        text = open(os.path.join(root, f, "CMakeLists.txt")).read()
        for m in re.finditer(r"target_link_libraries\(\s*([\w-]+)([^)]*)\)", text, re.S):
            if m.group(1) not in libs:
                continue
            for dep in m.group(2).split():
                if dep in libs:
                    edge(libs[m.group(1)], libs[dep], "links " + dep)
    for d, dirs, files in os.walk(root):
        rel = os.path.relpath(d, root)
        if rel.split(os.sep)[0] in SKIP or (rel.startswith(".") and rel != "."):
            dirs[:] = []
            continue
        here = owner_of(rel)
        for name in files:
            if not name.endswith((".c", ".h")):
                continue
            text = open(os.path.join(d, name), errors="replace").read()
            for m in INCLUDE.finditer(text):
                edge(here, headers.get(m.group(1)),
                     "%s includes kova/%s" % (os.path.join(rel, name), m.group(1)))
    return folders, edges


def find_cycle(nodes, edges):
    graph = {n: sorted(b for (a, b) in edges if a == n) for n in nodes}
    state, stack = {}, []
    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in graph.get(n, []):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if not state.get(m):
                c = visit(m)
                if c:
                    return c
        stack.pop()
        state[n] = 2
        return None
    for n in sorted(nodes):
        if not state.get(n):
            c = visit(n)
            if c:
                return c
    return None


def check(root):
    problems = []
    folders, edges = scan(root)
    if len(folders) < 3:
        problems.append("found only %d library folders under %s" % (len(folders), root))
    top = lambda f: f.split(os.sep)[0]
    for name, nodes, es in (
            ("library folders", folders, edges),
            ("top-level folders", {top(f) for f in folders},
             {(top(a), top(b)): w for (a, b), w in edges.items() if top(a) != top(b)})):
        c = find_cycle(nodes, es)
        if c:
            steps = ["%s -> %s (%s)" % (a, b, es[(a, b)]) for a, b in zip(c, c[1:])]
            problems.append("a cycle between %s: %s" % (name, "; ".join(steps)))
    api = os.path.join(root, "api")
    for d, _, files in os.walk(api):
        for name in sorted(files):
            if not name.endswith((".c", ".h")):
                continue
            path = os.path.join(d, name)
            text = strip_comments(open(path, errors="replace").read())
            for m in FORBIDDEN.finditer(text):
                line = text.count("\n", 0, m.start()) + 1
                problems.append("%s:%d: the REST library calls %s()" %
                                (os.path.relpath(path, root), line, m.group(1)))
    return folders, edges, problems


def self_test():
    def tree(files):
        d = tempfile.mkdtemp(prefix="kova-structure-")
        for path, text in files.items():
            full = os.path.join(d, path)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            open(full, "w").write(text)
        return d
    base = {
        "a/CMakeLists.txt": "add_library(la a.c)\n",
        "a/include/kova/a.h": "",
        "b/CMakeLists.txt": "add_library(lb b.c)\n",
        "b/include/kova/b.h": "",
        "api/CMakeLists.txt": "add_library(lapi x.c)\n",
        "api/x.c": '#include "kova/a.h"\n/* fork() in a comment is fine */\n',
        "a/a.c": '#include "kova/b.h"\n',
    }
    ok = check(tree(base))[2]
    bad_cycle = dict(base, **{"b/b.c": '#include "kova/a.h"\n'})
    bad_nested = dict(base, **{"a/sub/CMakeLists.txt": "add_library(lsub s.c)\n",
                               "a/sub/include/kova/s.h": "",
                               "b/b.c": '#include "kova/s.h"\n'})
    bad_link = dict(base, **{"b/CMakeLists.txt": "add_library(lb b.c)\n"
                             "target_link_libraries(lb PUBLIC la)\n"})
    bad_fork = dict(base, **{"api/y.c": "void f(void) { if (fork() == 0) _exit(0); }\n"})
    bad_rmdir = dict(base, **{"api/z.c": "void g(void) { rmdir (\"/x\"); }\n"})
    failures = 0
    if ok:
        print("self-test: a good tree was refused: %s" % ok)
        failures += 1
    for name, files in (("include cycle", bad_cycle), ("nested-folder cycle", bad_nested),
                        ("link cycle", bad_link), ("fork in api", bad_fork),
                        ("rmdir in api", bad_rmdir)):
        p = check(tree(files))[2]
        print("self-test: %s -> %s" % (name, p[0] if p else "NOT DETECTED"))
        failures += not p
    return 1 if failures else 0


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
    root = os.path.abspath(root)
    folders, edges, problems = check(root)
    for (a, b), why in sorted(edges.items()):
        print("  %s -> %s (%s)" % (a, b, why))
    for p in problems:
        print("FAIL " + p)
    print("structure: %d library folders, %d dependencies, %d problem(s)" %
          (len(folders), len(edges), len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
