#!/usr/bin/env python3
"""Fails if modules of src/ import each other in a circle.

A module depends on another when it names `crate::<path>` outside its
tests; the path is resolved to the longest prefix that is a module file.
Circles make modules impossible to read or change alone.
"""
import os
import re
import sys

SRC = os.path.join(os.path.dirname(__file__), "..", "src")


def module_file(path):
    base = os.path.join(SRC, *path.split("::"))
    return os.path.exists(base + ".rs") or os.path.exists(os.path.join(base, "mod.rs"))


def graph():
    modules = {}
    for root, _, files in os.walk(SRC):
        for name in files:
            if not name.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(root, name), SRC)[:-3]
            module = re.sub(r"(^|/)mod$", "", rel).replace("/", "::")
            if module in ("lib", "main", ""):
                continue
            text = open(os.path.join(root, name)).read().split("#[cfg(test)]")[0]
            deps = set()
            for used in re.findall(r"crate::((?:[a-z_][a-z0-9_]*)(?:::[a-z_][a-z0-9_]*)*)", text):
                parts = used.split("::")
                for k in range(len(parts), 0, -1):
                    candidate = "::".join(parts[:k])
                    if module_file(candidate):
                        if candidate != module:
                            deps.add(candidate)
                        break
            modules[module] = deps
    return modules


def cycles(modules):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in modules.get(v, ()):
            if w not in modules:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(modules):
        if v not in index:
            visit(v)
    return found


if __name__ == "__main__":
    found = cycles(graph())
    for component in found:
        print("import circle:", " <-> ".join(component))
    sys.exit(1 if found else 0)
