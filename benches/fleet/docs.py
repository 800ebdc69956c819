#!/usr/bin/env python3
"""Put a fleet benchmark's measured results into docs/benchmarks.md.

    docs.py DOCS MACHINE_MD RESULTS_MD COMMAND

Replaces what stands between `<!-- BEGIN fleet-results -->` and `<!-- END fleet-results -->`
(the prose around the markers is written by hand) with the date, the command, the machine
table and the results table.
"""

import sys
import time
from pathlib import Path

BEGIN, END = "<!-- BEGIN fleet-results -->", "<!-- END fleet-results -->"


def main() -> None:
    docs, machine, results, command = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
    text = docs.read_text()
    if BEGIN not in text or END not in text:
        sys.exit(f"error: {docs} has no {BEGIN} … {END} markers; add them where the results go")
    body = (f"{BEGIN}\n"
            f"Measured {time.strftime('%Y-%m-%d')} with `{command}`.\n\n"
            f"{machine.read_text().strip()}\n\n"
            f"{results.read_text().strip()}\n"
            f"{END}")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    docs.write_text(head + body + tail)


if __name__ == "__main__":
    main()
