"""Summarise a py-spy `--format raw` (collapsed stacks) profile of an event-loop process.

    python3 benchmarks/profiles/summarize.py api-worker-baseline.collapsed.gz ['regex']

Keeps only samples on the event loop's thread (a frame `Runner.run`), drops idle
select() samples, prints self time per library and inclusive time of frames matching
the optional regex.
"""

import collections
import gzip
import re
import sys

path = sys.argv[1]
pattern = sys.argv[2] if len(sys.argv) > 2 else ""
opener = gzip.open if path.endswith(".gz") else open
total = 0
by_lib: collections.Counter[str] = collections.Counter()
inclusive: collections.Counter[str] = collections.Counter()
with opener(path, "rt") as f:
    for line in f:
        line = line.rstrip()
        if not line:
            continue
        stack, _, n_text = line.rpartition(" ")
        n = int(n_text)
        frames = stack.split(";")
        if not any("Runner.run" in fr for fr in frames):
            continue
        if "selectors" in frames[-1] and "select" in frames[-1]:
            continue
        total += n
        m = re.search(r"\(([^:]+):\d+\)", frames[-1])
        lib = (m.group(1) if m else frames[-1]).split("/")[0]
        by_lib[lib] += n
        for fr in set(frames):
            inclusive[fr] += n
print("event-loop samples", total)
for lib, c in by_lib.most_common(15):
    print(f"{100 * c / total:5.1f}% {lib}")
print("--- inclusive")
for fr, c in inclusive.most_common(300):
    if re.search(pattern, fr):
        print(f"{100 * c / total:5.1f}% {fr}")
